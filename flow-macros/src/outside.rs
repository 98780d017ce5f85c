//! `#[state]` outside a `#[flow::machine]` module: reported once per file, not once per state.

use std::sync::{Mutex, PoisonError};

/// Per source file, the earliest `#[state]` reported there (line, column).
static REPORTED: Mutex<Vec<(String, usize, usize)>> = Mutex::new(Vec::new());

/// Whether the `#[state]` at `span` is the one to report in its file: the first expanded there,
/// or one before it (an expansion run again, as an editor's may, reports again).
pub fn first_in_file(span: proc_macro::Span) -> bool {
    let (file, line, column) = (span.file(), span.line(), span.column());
    let mut reported = REPORTED.lock().unwrap_or_else(PoisonError::into_inner);
    match reported.iter_mut().find(|(known, ..)| *known == file) {
        None => {
            reported.push((file, line, column));
            true
        }
        Some(entry) if (line, column) <= (entry.1, entry.2) => {
            (entry.1, entry.2) = (line, column);
            true
        }
        Some(_) => false,
    }
}
