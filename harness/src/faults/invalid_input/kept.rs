//! A strategy that shrinks to a known value in one step: `kept_or(rendered, hostile)` draws from
//! `hostile`, and when a draw fails, shrinking first tries `rendered` (what the scenario's load
//! sends) instead of walking `hostile`'s own shrinks one by one. Each shrink step of the
//! invalid-input fault is a real request, with a budget of them: with this, every part of a
//! failing request that is not to blame goes back to what the load sends in one request, and
//! the budget is spent on the part that is.

use proptest::strategy::{NewTree, Strategy, ValueTree};
use proptest::test_runner::TestRunner;

/// `inner`, shrinking to `kept` first.
pub fn kept_or<S: Strategy>(kept: S::Value, inner: S) -> KeptOr<S>
where
    S::Value: Clone,
{
    KeptOr { kept, inner }
}

#[derive(Debug)]
pub struct KeptOr<S: Strategy> {
    kept: S::Value,
    inner: S,
}

impl<S: Strategy> Strategy for KeptOr<S>
where
    S::Value: Clone,
{
    type Tree = KeptOrTree<S::Tree>;
    type Value = S::Value;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        Ok(KeptOrTree {
            kept: self.kept.clone(),
            inner: self.inner.new_tree(runner)?,
            state: State::Drawn,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// The inner draw, not shrunk yet.
    Drawn,
    /// The kept value is being tried.
    Trying,
    /// The kept value still fails: nothing simpler.
    Kept,
    /// The kept value passes: the inner draw is to blame and shrinks as it would alone.
    Inner,
}

pub struct KeptOrTree<T: ValueTree> {
    kept: T::Value,
    inner: T,
    state: State,
}

impl<T: ValueTree> ValueTree for KeptOrTree<T>
where
    T::Value: Clone,
{
    type Value = T::Value;

    fn current(&self) -> T::Value {
        match self.state {
            State::Trying | State::Kept => self.kept.clone(),
            State::Drawn | State::Inner => self.inner.current(),
        }
    }

    fn simplify(&mut self) -> bool {
        match self.state {
            State::Drawn => {
                self.state = State::Trying;
                true
            }
            State::Trying | State::Kept => {
                self.state = State::Kept;
                false
            }
            State::Inner => self.inner.simplify(),
        }
    }

    fn complicate(&mut self) -> bool {
        match self.state {
            // Back to the failing draw; it is tried once more, then shrunk.
            State::Trying => {
                self.state = State::Inner;
                true
            }
            State::Inner => self.inner.complicate(),
            State::Drawn | State::Kept => false,
        }
    }
}
