//! Configuration: precedence, validation, the example file, and the binary's exit codes.

use std::collections::HashMap;
use std::process::Command;

use s3gate::config::{Config, ServeArgs};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn precedence_is_cli_then_env_then_file_then_default() {
    let file = r#"
        listen = "127.0.0.1:1000"
        region = "eu-west-1"
        upstream = "http://file.example:9000"
        credentials = ["FILEKEY:filesecret"]
    "#;
    let args = ServeArgs { listen: Some("127.0.0.1:3000".into()), ..Default::default() };
    let e = env(&[("S3GATE_LISTEN", "127.0.0.1:2000"), ("S3GATE_REGION", "ap-south-1")]);
    let r = Config::resolve(&args, &e, Some(file)).expect("resolves");
    assert_eq!(r.listen, "127.0.0.1:3000", "CLI wins");
    assert_eq!(r.region, "ap-south-1", "env beats file");
    assert_eq!(r.upstream.as_deref(), Some("http://file.example:9000"), "file beats default");
    assert_eq!(r.max_clock_skew, 900, "default");
    let cfg = Config::validate(r).expect("valid");
    assert_eq!(cfg.keys.len(), 1);
}

#[test]
fn env_lists_are_comma_separated() {
    let e = env(&[("S3GATE_CREDENTIALS", "A:1, B:2"), ("S3GATE_DOMAIN", "s3.local,s3.corp")]);
    let cfg = Config::validate(Config::resolve(&ServeArgs::default(), &e, None).expect("resolves")).expect("valid");
    assert_eq!(cfg.keys.len(), 2);
    assert_eq!(cfg.domains, ["s3.local", "s3.corp"]);
}

#[test]
fn default_upstream_follows_the_region() {
    let e = env(&[("S3GATE_CREDENTIALS", "A:1"), ("S3GATE_REGION", "eu-central-1")]);
    let cfg = Config::validate(Config::resolve(&ServeArgs::default(), &e, None).expect("resolves")).expect("valid");
    assert_eq!(cfg.upstream.url.to_string(), "https://s3.eu-central-1.amazonaws.com/");
    assert!(matches!(cfg.upstream.credentials, s3gate::config::UpstreamCredentials::DefaultChain));
}

#[test]
fn unknown_file_keys_are_refused() {
    let err = Config::resolve(&ServeArgs::default(), &HashMap::new(), Some("listne = \"x\"")).expect_err("typo");
    assert!(err.to_string().contains("listne"), "{err}");
}

#[test]
fn bad_values_have_clear_errors() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("S3GATE_CREDENTIALS", "A:1"), ("S3GATE_LISTEN", "nowhere")], "listen"),
        (&[("S3GATE_CREDENTIALS", "A:1"), ("S3GATE_UPSTREAM", "ftp://x")], "upstream"),
        (&[("S3GATE_CREDENTIALS", "nocolon")], "AKID:SECRET"),
        (&[], "no client credentials"),
        (&[("S3GATE_CREDENTIALS", "A:1"), ("S3GATE_MAX_CLOCK_SKEW", "soon")], "MAX_CLOCK_SKEW"),
        (&[("S3GATE_CREDENTIALS", "A:1"), ("S3GATE_DOMAIN", "http://x")], "domain"),
        (&[("S3GATE_CREDENTIALS", "A:1"), ("S3GATE_MAX_CONNECTIONS", "0")], "max-connections"),
        (&[("S3GATE_CREDENTIALS", "A:1"), ("S3GATE_MAX_CONNECTIONS", "many")], "MAX_CONNECTIONS"),
    ];
    for (pairs, needle) in cases {
        let e = env(pairs);
        let err = Config::resolve(&ServeArgs::default(), &e, None).and_then(Config::validate).expect_err("invalid");
        assert!(err.to_string().contains(needle), "{pairs:?}: {err}");
    }
}

#[test]
fn max_connections_follows_the_precedence_and_applies_to_both_listeners() {
    let load = |args: &ServeArgs, pairs: &[(&str, &str)], file: &str| {
        let mut e = env(pairs);
        e.insert("S3GATE_CREDENTIALS".into(), "A:1".into());
        Config::validate(Config::resolve(args, &e, Some(file)).expect("resolves")).expect("valid")
    };
    let cfg = load(&ServeArgs::default(), &[], "");
    assert_eq!(cfg.max_connections, s3gate::listener::limits::default_max_connections());
    assert!(cfg.max_connections >= 1024);
    let file = "max_connections = 300\n[forward]\nlisten = \"127.0.0.1:3128\"";
    let cfg = load(&ServeArgs::default(), &[], file);
    assert_eq!(cfg.max_connections, 300, "the file beats the default");
    assert_eq!(cfg.forward.expect("forward").max_connections, 300, "the forward listener has the same cap");
    assert_eq!(load(&ServeArgs::default(), &[("S3GATE_MAX_CONNECTIONS", "200")], file).max_connections, 200);
    let args = ServeArgs { max_connections: Some(100), ..Default::default() };
    assert_eq!(load(&args, &[("S3GATE_MAX_CONNECTIONS", "200")], file).max_connections, 100, "the flag wins");
}

#[test]
fn the_example_config_file_loads() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/s3gate.toml");
    let (_dir, path) = crate::support::private_copy(example.as_ref());
    let args = ServeArgs { config: Some(path), ..Default::default() };
    let cfg = Config::load(&args, &HashMap::new()).expect("example loads");
    assert_eq!(cfg.upstream.region, "eu-west-1");
    assert_eq!(cfg.domains, ["s3.intranet.example.com"]);
}

#[cfg(unix)]
#[test]
fn credentials_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("creds");
    std::fs::write(&path, "# clients\nK1:secret-one\n\nK2:secret:two\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let args = ServeArgs { credentials_file: Some(path.clone()), ..Default::default() };
    let err = Config::load(&args, &HashMap::new()).expect_err("world readable");
    assert!(err.to_string().contains("readable"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let cfg = Config::load(&args, &HashMap::new()).expect("private file loads");
    assert_eq!(cfg.keys.len(), 2);
    assert_eq!(cfg.keys.secret("K2").map(|s| s.expose().to_owned()).as_deref(), Some("secret:two"));
}

#[cfg(unix)]
#[test]
fn a_config_file_holding_secrets_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let chmod = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let load = |path: &std::path::Path| {
        Config::load(&ServeArgs { config: Some(path.to_owned()), ..Default::default() }, &HashMap::new())
    };
    let secrets = [
        "credentials = [\"K1:secret-one\"]",
        "credentials_file = \"CREDS\"\nupstream_credentials = \"UP:upstream-secret\"",
        "credentials_file = \"CREDS\"\n[[client]]\naccess_key_id = \"K2\"\nsecret_access_key = \"two\"",
        "credentials_file = \"CREDS\"\n[[route]]\nbucket = \"b\"\nupstream_credentials = \"R:route-secret\"",
        "listen = \"none\"\n[forward]\nlisten = \"127.0.0.1:0\"\nuser = [\"builder:password\"]",
    ];
    let creds = dir.path().join("creds");
    std::fs::write(&creds, "K1:secret-one\n").expect("write");
    chmod(&creds, 0o600);
    let path = dir.path().join("s3gate.toml");
    for text in secrets {
        std::fs::write(&path, text.replace("CREDS", &creds.display().to_string())).expect("write");
        chmod(&path, 0o644);
        let err = load(&path).expect_err("world readable");
        assert!(err.to_string().contains("readable by others"), "{text}: {err}");
        chmod(&path, 0o640);
        load(&path).unwrap_or_else(|e| panic!("{text}: a private file loads: {e}"));
    }
    // A file that only names its secret files (a Kubernetes ConfigMap) may be read by anyone.
    std::fs::write(&path, format!("credentials_file = \"{}\"\n", creds.display())).expect("write");
    chmod(&path, 0o644);
    assert_eq!(load(&path).expect("no secret in it").keys.len(), 1);
}

#[test]
fn the_binary_rejects_bad_flags_with_a_message_and_nonzero_exit() {
    let bin = env!("CARGO_BIN_EXE_s3gate");
    let out = Command::new(bin).args(["serve", "--no-such-flag"]).output().expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));

    let out = Command::new(bin)
        .args(["check-config", "--listen", "not-an-address", "--credentials", "A:1"])
        .env_remove("S3GATE_LISTEN")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));

    let out = Command::new(bin).args(["check-config", "--config", "/nonexistent/s3gate.toml"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/s3gate.toml"));

    let out = Command::new(bin)
        .args(["check-config", "--credentials", "A:1", "--upstream", "http://127.0.0.1:9"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("config ok"));
}

/// The example file, each commented-out `key = value` line uncommented.
fn example_with_every_key() -> String {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/s3gate.toml")).expect("read");
    example.lines().map(|line| commented_key(line).unwrap_or(line)).collect::<Vec<_>>().join("\n")
}

/// `key = value` in a `# key = value` line.
fn commented_key(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('#').map(str::trim_start)?;
    let (key, _) = rest.split_once(" = ")?;
    key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_').then_some(rest)
}

/// Whether `text` (TOML) sets `key` in `table` (`""`: before the first table).
fn sets_key(text: &str, table: &str, key: &str) -> bool {
    let mut current = "";
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            current = header.trim_matches(|c| c == '[' || c == ']');
        } else if current == table && line.split_once(" = ").is_some_and(|(k, _)| k == key) {
            return true;
        }
    }
    false
}

#[test]
fn every_flag_has_an_environment_variable_and_a_key_in_the_example_file() {
    use clap::Args;
    let command = ServeArgs::augment_args(clap::Command::new("serve"));
    let flags: Vec<String> = command.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")).collect();
    let keys: Vec<&s3gate::config::Key> = s3gate::config::keys().collect();
    for flag in flags.iter().filter(|f| *f != "--config") {
        assert!(keys.iter().any(|k| k.flag() == *flag), "{flag} is not a declared key");
    }
    let example = example_with_every_key();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("read");
    let unset = format!("{:?}", Config::resolve(&ServeArgs::default(), &HashMap::new(), None).expect("resolves"));
    for key in keys {
        assert!(flags.contains(&key.flag()), "{} has no flag", key.field);
        assert!(readme.contains(&key.flag()), "README.md does not mention {}", key.flag());
        assert!(sets_key(&example, key.table, key.toml), "examples/s3gate.toml lacks {}", key.toml_path());
        // "x" is a value for a string, a path or a list, and an error naming the variable otherwise.
        match Config::resolve(&ServeArgs::default(), &env(&[(&key.env(), "x")]), None) {
            Ok(r) => assert_ne!(format!("{r:?}"), unset, "{} is not read", key.env()),
            Err(e) => assert!(e.to_string().contains(&key.env()), "{}: {e}", key.env()),
        }
    }
    // Every key the example shows, commented out or not, is one the file may set, with its type.
    Config::resolve(&ServeArgs::default(), &HashMap::new(), Some(&example)).expect("every example key resolves");
}

#[test]
fn validation_reads_no_file_itself() {
    use s3gate::config::{FileUse, Files};
    let file = r#"
        credentials_file = "/nonexistent/clients"
        [[client]]
        access_key_id = "READER"
        secret_file = "/nonexistent/reader.secret"
        policy_file = "/nonexistent/reader.json"
    "#;
    let policy = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}"#;
    let r = Config::resolve(&ServeArgs::default(), &HashMap::new(), Some(file)).expect("resolves");
    let mut files = Files::default();
    files.insert("/nonexistent/clients", FileUse::Secret, "# clients\nK1:one\nK2:two\n");
    files.insert("/nonexistent/reader.secret", FileUse::Secret, "reader-secret\n");
    files.insert("/nonexistent/reader.json", FileUse::Text, policy);
    let cfg = Config::validate_with(r.clone(), &files).expect("valid");
    assert_eq!(cfg.keys.len(), 3);
    assert_eq!(cfg.keys.secret("READER").map(|s| s.expose().to_owned()).as_deref(), Some("reader-secret"));
    assert!(cfg.keys.policy("READER").is_some() && cfg.keys.policy("K1").is_none());

    // What the loader could not read is reported when validation reaches it.
    let err = Config::validate(r).expect_err("the files do not exist");
    assert!(err.to_string().contains("/nonexistent/clients"), "{err}");
}

#[test]
fn serving_threads_are_one_per_core_unless_set() {
    let load = |pairs: &[(&str, &str)], file: &str| {
        let mut e = env(pairs);
        e.insert("S3GATE_CREDENTIALS".into(), "A:1".into());
        Config::validate(Config::resolve(&ServeArgs::default(), &e, Some(file))?)
    };
    assert_eq!(load(&[], "").expect("valid").serving_threads, None, "the default is one per core");
    assert_eq!(load(&[], "serving_threads = 3").expect("valid").serving_threads, Some(3));
    assert_eq!(
        load(&[("S3GATE_SERVING_THREADS", "2")], "serving_threads = 3").expect("valid").serving_threads,
        Some(2)
    );
    for bad in ["0", "100000"] {
        let err = load(&[("S3GATE_SERVING_THREADS", bad)], "").expect_err("out of range").to_string();
        assert!(err.contains("serving-threads"), "{err}");
    }
}

/// The process runs as many serving threads as it is told, each named for what it does, and
/// serves on them.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_binary_serves_on_the_threads_it_is_given() {
    use std::io::{BufRead, BufReader};
    let child = Command::new(env!("CARGO_BIN_EXE_s3gate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--credentials", "A:1"])
        .args(["--serving-threads", "3"])
        .env("RUST_LOG", "info")
        .env_remove("S3GATE_LOG_FORMAT")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("s3gate runs");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let stderr = child.0.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines.next().expect("s3gate starts").expect("log line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
            break addr.parse().expect("address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    for _ in 0..6 {
        let resp = crate::support::raw::send(crate::support::raw::request("GET", addr, "/_s3gate/live"), "").await;
        assert_eq!(resp.status, 200);
    }
    let pid = child.0.id();
    let names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("its threads")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("s3gate-serve"))
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["s3gate-serve-1", "s3gate-serve-2", "s3gate-serve-3"]);
}
