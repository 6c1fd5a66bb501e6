//! Go's `strconv.ParseBool`, which HashiCorp's provider uses for booleans in
//! parameters and flags; the same spellings must keep working.

/// Parses a boolean the way Go's `strconv.ParseBool` does.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_go_bool;

    #[test]
    fn accepts_go_spellings_only() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "no", "tRUE", "", " true", "2"] {
            assert_eq!(parse_go_bool(bad), None, "{bad}");
        }
    }
}
