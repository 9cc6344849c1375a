//! The async runtime a peer runs on. Its threads carry a call's packets between the audio
//! engine and the network (the WebRTC stack, the peers' tasks), so they run at a raised
//! priority where the system allows it: at normal priority another program keeping the
//! cores busy held packets back for hundreds of milliseconds (`confab_audio::priority`).

/// A multi-threaded runtime whose worker and blocking threads run raised. What it blocks
/// on runs on the caller's thread, which the caller raises if that carries packets too.
pub fn for_calls() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(|| {
            confab_audio::priority::raise_current_thread();
        })
        .build()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    fn nice() -> i32 {
        rustix::process::getpriority_process(None).expect("getpriority")
    }

    /// Where this process may raise a thread at all (root, as in CI), the runtime's
    /// workers and blocking threads run raised, and the thread that built it does not.
    #[test]
    fn its_threads_run_raised_where_the_system_allows() {
        let allowed = std::thread::spawn(confab_audio::priority::raise_current_thread)
            .join()
            .unwrap();
        if !allowed {
            eprintln!("skipped: this process may not raise a thread's priority");
            return;
        }
        let before = nice();
        let runtime = super::for_calls().unwrap();
        let (worker, blocking) = runtime.block_on(async {
            let worker = tokio::spawn(async { nice() }).await.unwrap();
            let blocking = tokio::task::spawn_blocking(nice).await.unwrap();
            (worker, blocking)
        });
        assert_eq!((worker, blocking), (-10, -10));
        assert_eq!(nice(), before, "the caller's own thread is left as it was");
    }
}
