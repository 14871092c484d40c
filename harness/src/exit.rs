//! Exit codes of the `fivehundred` binary, shared by every command. A leaf module.

pub const EXIT_OK: i32 = 0;
pub const EXIT_CHECK_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_LAB: i32 = 3;
