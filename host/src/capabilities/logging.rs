//! `logging`: guest log lines into the host's tracing, tagged with
//! component, version and request id. Bounded per call.

use wasmtime::component::{HasSelf, Linker};

use super::context::ContextView;
use crate::bindings::logging::{self, Host, Level};
use crate::call::CallInfo;

/// Links `polyscale:commerce/logging`; lines are tagged with the call's
/// facts.
pub fn add_to_linker<T: ContextView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    logging::add_to_linker::<T, HasSelf<CallInfo>>(linker, |t| t.call_info())
}

/// Lines one call may log; the rest are dropped (with one warning).
const MAX_LINES_PER_CALL: u32 = 1000;
/// Longest line kept; longer ones are cut.
const MAX_LINE_BYTES: usize = 8 * 1024;

impl Host for CallInfo {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.log_lines += 1;
        if self.log_lines > MAX_LINES_PER_CALL {
            if self.log_lines == MAX_LINES_PER_CALL + 1 {
                tracing::warn!(component = %self.component, version = %self.version, request_id = %self.request_id,
                    "component logged over {MAX_LINES_PER_CALL} lines in one call; dropping the rest");
            }
            return Ok(());
        }
        let mut message = message;
        if message.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        // `?message` escapes newlines, so a guest cannot forge log lines.
        macro_rules! emit {
            ($lvl:ident) => {
                tracing::$lvl!(target: "polyscale::guest", component = %self.component, version = %self.version,
                    request_id = %self.request_id, message = ?message)
            };
        }
        match level {
            Level::Trace => emit!(trace),
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error => emit!(error),
        }
        Ok(())
    }
}
