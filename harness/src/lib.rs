//! fivehundred: injects the real causes of HTTP 500 errors into a service and checks it responds
//! correctly.
