//! `OLLAMA_HOST`, read as Ollama 0.24's own client reads it (`envconfig.Host()`): a bare host, a
//! `host:port`, `:port`, an IP (IPv6 with or without brackets) or a URL; no port means 11434
//! (80 / 443 for an explicit `http://` / `https://`). The one change is for the client side:
//! a host of exactly `0.0.0.0` (a server's "listen everywhere") is reached at `127.0.0.1`.

use std::net::IpAddr;

const DEFAULT_PORT: &str = "11434";

/// The Ollama base URL `OLLAMA_HOST` means, or what is wrong with it.
pub fn parse_ollama_host(value: &str) -> Result<String, String> {
    // Ollama trims spaces, then quotes (`OLLAMA_HOST="box:1234"` in a .env file).
    let s = value.trim().trim_matches(|c| c == '"' || c == '\'');
    let (scheme, rest, default_port) = match s.split_once("://") {
        None => ("http", s, DEFAULT_PORT),
        Some(("http", rest)) => ("http", rest, "80"),
        Some(("https", rest)) => ("https", rest, "443"),
        Some((other, _)) => {
            return Err(format!(
                "`{value}` uses scheme `{other}://`; use http:// or https://"
            ));
        }
    };
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = match split_host_port(hostport) {
        Some((host, port)) => (host.to_string(), port),
        None => {
            let bare = hostport.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<IpAddr>() {
                Ok(ip) => (ip.to_string(), default_port),
                Err(_) => (hostport.to_string(), default_port),
            }
        }
    };
    let port: u16 = port.parse().map_err(|_| {
        format!("`{value}` has port `{port}`, which is not a port number (1-65535)")
    })?;
    if port == 0 {
        return Err(format!(
            "`{value}` has port 0; give the port Ollama listens on"
        ));
    }
    let host = match host.as_str() {
        "" | "0.0.0.0" => "127.0.0.1".to_string(),
        h => h.to_string(),
    };
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | '?' | '#' | '[' | ']'))
    {
        return Err(format!(
            "`{value}` is not a host, host:port or URL (e.g. `gpu-box:11434` or `http://gpu-box:11434`)"
        ));
    }
    let host = if host.contains(':') {
        format!("[{host}]") // an IPv6 address
    } else {
        host
    };
    let path = path.trim_end_matches('/');
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{value}` has spaces in its path; give a host, host:port or URL (e.g. `http://gpu-box:11434`)"
        ));
    }
    Ok(if path.is_empty() {
        format!("{scheme}://{host}:{port}")
    } else {
        format!("{scheme}://{host}:{port}/{path}")
    })
}

/// Go's `net.SplitHostPort`: `host:port` or `[v6]:port`; `None` when there is no port part.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    // More than one colon without brackets is a bare IPv6 address, not host:port.
    (!host.contains(':')).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: &str) -> String {
        parse_ollama_host(v).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    #[test]
    fn forms_ollama_accepts() {
        assert_eq!(ok("0.0.0.0"), "http://127.0.0.1:11434");
        assert_eq!(ok("0.0.0.0:11434"), "http://127.0.0.1:11434");
        assert_eq!(ok(":11434"), "http://127.0.0.1:11434");
        assert_eq!(ok(":8080"), "http://127.0.0.1:8080");
        assert_eq!(ok("box"), "http://box:11434");
        assert_eq!(ok("box:1234"), "http://box:1234");
        assert_eq!(ok(" \"box:1234\" "), "http://box:1234");
        assert_eq!(ok("http://box"), "http://box:80");
        assert_eq!(ok("https://x.example/"), "https://x.example:443");
        assert_eq!(
            ok("https://x.example:8443/ollama/"),
            "https://x.example:8443/ollama"
        );
        assert_eq!(ok("::1"), "http://[::1]:11434");
        assert_eq!(ok("[::1]:9"), "http://[::1]:9");
    }

    #[test]
    fn only_exactly_0_0_0_0_becomes_loopback() {
        // Found on the real thing: 110.0.0.0 became 11127.0.0.1.
        assert_eq!(ok("110.0.0.0"), "http://110.0.0.0:11434");
        assert_eq!(ok("10.0.0.0:5"), "http://10.0.0.0:5");
        assert_eq!(ok("0.0.0.01"), "http://0.0.0.01:11434");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        assert!(
            parse_ollama_host("box:99999")
                .expect_err("must be refused")
                .contains("port")
        );
        assert!(
            parse_ollama_host("box:abc")
                .expect_err("must be refused")
                .contains("port")
        );
        assert!(
            parse_ollama_host("tcp://box")
                .expect_err("must be refused")
                .contains("scheme")
        );
        assert!(
            parse_ollama_host("a b")
                .expect_err("must be refused")
                .contains("not a host")
        );
    }
}
