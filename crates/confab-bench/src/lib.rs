//! What the benchmarks share beyond the testkit (`confab-testkit`, also the tests'):
//! [`peers`], finding the `confab` binary beside a bench, and waiting for a peer's event.

pub mod peers;
