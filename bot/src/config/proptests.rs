//! Arbitrary input to configuration loading and `OLLAMA_HOST` gives a value or a clear error,
//! never a panic.

use proptest::prelude::*;

use super::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ollama_host_never_panics_and_gives_a_usable_url(value in "\\PC{0,40}") {
        match parse_ollama_host(&value) {
            Ok(url) => {
                prop_assert!(url.starts_with("http://") || url.starts_with("https://"), "{url}");
                prop_assert!(!url.chars().any(char::is_whitespace), "{url}");
                prop_assert!(validate::http_url(&url).is_ok(), "{url}");
            }
            Err(e) => prop_assert!(e.contains(&value.trim().to_string()) || !e.is_empty()),
        }
    }

    #[test]
    fn host_and_port_keep_their_host(
        host in "[a-z][a-z0-9-]{0,20}(\\.[a-z0-9]{1,8}){0,3}|[0-9]{1,3}(\\.[0-9]{1,3}){3}",
        port in 1u16..,
    ) {
        let url = parse_ollama_host(&format!("{host}:{port}")).map_err(TestCaseError::fail)?;
        let want_host = if host == "0.0.0.0" { "127.0.0.1" } else { host.as_str() };
        prop_assert_eq!(url, format!("http://{want_host}:{port}"));
        let bare = parse_ollama_host(&host).map_err(TestCaseError::fail)?;
        prop_assert_eq!(bare, format!("http://{want_host}:11434"));
    }

    #[test]
    fn go_durations_never_panic(value in "\\PC{0,20}|[-+]?([0-9]{0,4}(\\.[0-9]{0,3})?(ns|us|µs|ms|s|m|h|d)){1,4}") {
        let _ = check_go_duration(&value);
    }

    #[test]
    fn any_file_loads_or_says_why(text in "\\PC{0,200}|(\\[[a-z.]{1,20}\\]\n([a-z_]{1,20} = (\"[^\"\\\\\n]{0,10}\"|[0-9]{1,6}|true|\\[\\])\n){0,4}){1,3}") {
        let f = tempfile::NamedTempFile::new().map_err(|e| TestCaseError::fail(e.to_string()))?;
        std::fs::write(f.path(), &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Err(e) = BotConfig::load_from(Some(f.path()), Vec::new()) {
            prop_assert!(!e.to_string().trim().is_empty());
        }
    }

    #[test]
    fn any_environment_loads_or_says_why(
        key in "[A-Z_]{0,30}",
        value in "\\PC{0,30}",
        host in "\\PC{0,30}",
    ) {
        let env = vec![
            (format!("{ENV_PREFIX}{key}"), value),
            ("OLLAMA_HOST".to_string(), host),
        ];
        if let Err(e) = BotConfig::load_from(None, env) {
            prop_assert!(!e.to_string().trim().is_empty());
        }
    }
}
