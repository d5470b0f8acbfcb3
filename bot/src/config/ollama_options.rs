//! What Ollama 0.24 checks in a request, checked when the configuration loads instead: the JSON
//! types of the `options` it knows (`api.Options.FromMap`: a string `num_ctx` is a 500 on every
//! request, exchange 15) and `keep_alive` as Go's `time.ParseDuration` reads it (exchange 21b).
//! Options Ollama does not know pass: it only logs a warning for them (exchange 18).

use serde_json::Value;

#[derive(Clone, Copy)]
enum Kind {
    /// A JSON number; Ollama truncates a float (exchange 15c).
    Integer,
    Float,
    Bool,
    Strings,
}

/// The options of Ollama 0.24's `api.Options` and `api.Runner`, with their types.
const KNOWN: &[(&str, Kind)] = &[
    ("num_keep", Kind::Integer),
    ("seed", Kind::Integer),
    ("num_predict", Kind::Integer),
    ("top_k", Kind::Integer),
    ("top_p", Kind::Float),
    ("min_p", Kind::Float),
    ("typical_p", Kind::Float),
    ("repeat_last_n", Kind::Integer),
    ("temperature", Kind::Float),
    ("repeat_penalty", Kind::Float),
    ("presence_penalty", Kind::Float),
    ("frequency_penalty", Kind::Float),
    ("stop", Kind::Strings),
    ("num_ctx", Kind::Integer),
    ("num_batch", Kind::Integer),
    ("num_gpu", Kind::Integer),
    ("main_gpu", Kind::Integer),
    ("use_mmap", Kind::Bool),
    ("num_thread", Kind::Integer),
];

/// Checks one option's value; `Err` says what Ollama would answer and what to write instead.
pub fn check_option(name: &str, value: &Value) -> Result<(), String> {
    let Some((_, kind)) = KNOWN.iter().find(|(k, _)| *k == name) else {
        return Ok(());
    };
    let fits = match kind {
        Kind::Integer | Kind::Float => value.is_number(),
        Kind::Bool => value.is_boolean(),
        Kind::Strings => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string)),
    };
    if fits {
        return Ok(());
    }
    let (wanted, example) = match kind {
        Kind::Integer => ("an integer", "8192"),
        Kind::Float => ("a number", "0.7"),
        Kind::Bool => ("true or false", "true"),
        Kind::Strings => ("a list of strings", "[\"</s>\"]"),
    };
    Err(format!(
        "is {value}, but Ollama takes {wanted} here (write e.g. {name} = {example}, without quotes); it would refuse every request"
    ))
}

/// Go's `time.ParseDuration`, which Ollama applies to a string `keep_alive`: `"5m"`, `"1h30m"`,
/// `"-1s"` (negative: keep loaded forever), `"0"`. `Err` carries Go's own wording.
pub fn check_go_duration(s: &str) -> Result<(), String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let mut rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    if rest == "0" {
        return Ok(());
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..digits_end];
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(invalid());
        }
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let nanos: f64 = match unit {
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit \"{unit}\" in duration \"{s}\"")),
        };
        let value: f64 = format!("{}.{}", if int.is_empty() { "0" } else { int }, frac)
            .trim_end_matches('.')
            .parse()
            .map_err(|_| invalid())?;
        total += value * nanos;
        // Go keeps nanoseconds in an int64: about 292 years.
        if total > i64::MAX as f64 {
            return Err(invalid());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn option_types_as_ollama_checks_them() {
        assert!(check_option("num_ctx", &json!(8192)).is_ok());
        assert!(check_option("num_ctx", &json!(2048.5)).is_ok()); // exchange 15c
        let e = check_option("num_ctx", &json!("8192")).expect_err("string num_ctx");
        assert!(e.contains("integer") && e.contains("num_ctx = 8192"), "{e}");
        assert!(check_option("temperature", &json!("hot")).is_err());
        assert!(check_option("stop", &json!(["a", "b"])).is_ok());
        assert!(check_option("stop", &json!("a")).is_err());
        assert!(check_option("stop", &json!([1])).is_err());
        assert!(check_option("use_mmap", &json!(1)).is_err());
        assert!(check_option("bogus_opt", &json!("x")).is_ok()); // exchange 18
    }

    #[test]
    fn go_durations() {
        for ok in [
            "5m", "0", "1h30m", "-1s", "+2h", "1.5h", ".5s", "300ms", "2µs", "10us",
        ] {
            assert!(check_go_duration(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            check_go_duration("forever").expect_err("forever"),
            "time: invalid duration \"forever\"" // exchange 21b, word for word
        );
        assert!(
            check_go_duration("300")
                .expect_err("no unit")
                .contains("missing unit")
        );
        assert!(
            check_go_duration("1d")
                .expect_err("days")
                .contains("unknown unit \"d\"")
        );
        for bad in ["", "-", ".s", "1..2s", "99999999999h", "5m ", " 5m"] {
            assert!(check_go_duration(bad).is_err(), "{bad:?}");
        }
    }
}
