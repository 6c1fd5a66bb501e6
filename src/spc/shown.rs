//! Echoing a user's value in an error message, within bounds.

use std::fmt;

/// Longest part of a value an error message quotes, in bytes.
const SHOWN_BYTES: usize = 64;

/// A value quoted for an error message: Debug-escaped (so control
/// characters stay visible) and cut to its first [`SHOWN_BYTES`] bytes with
/// its full length appended, so a hostile megabyte-long value cannot turn
/// into a megabyte-long pod event.
pub(crate) struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        if text.len() <= SHOWN_BYTES {
            return write!(f, "{text:?}");
        }
        let mut end = SHOWN_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{:?}… ({} bytes)", &text[..end], text.len())
    }
}

/// Where and what kind of JSON error `error` is, without its text: serde's
/// messages quote the offending value (`invalid type: string "…"`), and for
/// the secrets and the tokens attribute that value is a credential.
pub(crate) fn json_error_without_values(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "a read error",
        serde_json::error::Category::Syntax => "a syntax error",
        serde_json::error::Category::Data => "a value of the wrong type",
        serde_json::error::Category::Eof => "an early end",
    };
    format!("{kind} at line {} column {}", error.line(), error.column())
}

#[cfg(test)]
mod tests {
    use super::Shown;

    #[test]
    fn json_errors_keep_the_position_and_drop_the_value() {
        let error =
            serde_json::from_str::<std::collections::BTreeMap<String, String>>("\"s3cr3t-token\"")
                .unwrap_err();
        assert!(
            error.to_string().contains("s3cr3t-token"),
            "serde_json quotes it"
        );
        let text = super::json_error_without_values(&error);
        assert_eq!(text, "a value of the wrong type at line 1 column 14");
    }

    #[test]
    fn short_values_are_quoted_whole_and_long_ones_cut_at_a_char_boundary() {
        assert_eq!(Shown("a\nb").to_string(), "\"a\\nb\"");
        let long = format!("{}é{}", "x".repeat(63), "y".repeat(1000));
        let shown = Shown(&long).to_string();
        assert_eq!(shown, format!("\"{}\"… (1065 bytes)", "x".repeat(63)));
    }
}
