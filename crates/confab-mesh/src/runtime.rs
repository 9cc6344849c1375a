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
