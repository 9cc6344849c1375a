//! A second start that comes while this instance is closing would be lost: its window is
//! gone, but until the window's teardown ends (a second or more on a busy machine) this
//! instance still holds the single-instance name, so the new start hands its arguments
//! here and exits, and the user sees nothing. Such a start is remembered, and made again
//! once this instance has let go of the name.

use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Reopen {
    argv: Mutex<Option<Vec<String>>>,
}

impl Reopen {
    /// A start (its whole command line) came with no window here to bring forward.
    pub fn remember(&self, argv: Vec<String>) {
        *self.lock() = Some(argv);
    }

    /// Makes the remembered start again, if one came while closing.
    pub fn now(&self) {
        let Some(argv) = self.lock().take() else {
            return;
        };
        let program = match std::env::current_exe() {
            Ok(program) => program,
            Err(e) => {
                return log::warn!(
                    "cannot start Confab again for a start that came while closing: {e}"
                );
            }
        };
        match std::process::Command::new(program)
            .args(argv.iter().skip(1))
            .spawn()
        {
            Ok(_) => log::info!("started Confab again: it was opened while this one was closing"),
            Err(e) => {
                log::warn!("cannot start Confab again for a start that came while closing: {e}")
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<String>>> {
        // A plain value: a poisoned lock still holds a whole one.
        self.argv.lock().unwrap_or_else(|p| p.into_inner())
    }
}
