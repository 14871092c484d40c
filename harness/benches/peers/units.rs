//! The bench's unit tests (how it reads wrk's, oha's and cargo's output, fault's run document,
//! its table), as the test target `bench_units`: the bench itself has no test harness, which
//! compiles its `#[test]` functions out. The same modules as `main.rs`; only the tests are reached.

#![allow(dead_code)]

mod container_rows;
mod crates;
mod fault;
mod lab_rows;
mod load_rows;
mod oha;
mod phases;
mod proxy_rows;
mod server;
mod table;
mod tools;
