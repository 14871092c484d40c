//! The payments dependency the lab serves to the target.
