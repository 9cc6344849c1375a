// No console window on Windows release builds; Linux ignores it.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    confab_desktop::run();
}
