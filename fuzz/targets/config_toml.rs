//! The TOML config file, resolved and validated into a `Config` (`fuzzing::config_from_toml`:
//! no flags, no environment, and no file the config names is read).
//!
//! Input: the file's text.
//!
//! Checks: a config that validates serves something, with at least one client credential if it
//! runs the endpoint; its domains are bare lower-case names; the forward proxy, when on, allows
//! only real ports and at least one tunnel.

use s3gate::fuzzing::config_from_toml;

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(config) = config_from_toml(text) else {
        return;
    };
    assert!(config.endpoint || config.forward.is_some(), "a config that serves nothing");
    if config.endpoint {
        assert!(!config.keys.is_empty(), "an endpoint without client credentials");
    }
    for domain in &config.domains {
        assert!(!domain.is_empty() && !domain.contains(['/', ':']) && *domain == domain.to_ascii_lowercase());
    }
    assert!(matches!(config.upstream.url.scheme_str(), Some("http" | "https")));
    if let Some(forward) = &config.forward {
        assert!(forward.max_tunnels >= 1);
        assert!(!forward.allow.tunnel_ports.contains(&0) && !forward.allow.http_ports.contains(&0));
    }
}
