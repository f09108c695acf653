//! The s3gate binary: parse, set up logging, load config, run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rand::distributions::{Alphanumeric, DistString};

use s3gate::config::{Config, ServeArgs};
use s3gate::credentials::Credential;

#[derive(Debug, Parser)]
#[command(name = "s3gate", version, about = "A fast, safe gateway from a private network to S3")]
struct Cli {
    /// Log as JSON lines (also S3GATE_LOG_FORMAT=json).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Validate the configuration without starting.
    CheckConfig(ServeArgs),
    /// Run s3gate in front of an embedded local S3 store, and print how to use it.
    Demo(DemoArgs),
    /// Run only the embedded local S3 store (for benchmarks and experiments).
    Store(StoreArgs),
    /// Print a presigned URL for one object, signed with a configured client credential (offline).
    Presign(Box<s3gate::presign::cli::PresignArgs>),
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Where the embedded store keeps objects.
    #[arg(long, default_value = "s3gate-demo-data")]
    data: PathBuf,
    /// Address of the gateway.
    #[arg(long, default_value = "127.0.0.1:8099")]
    listen: SocketAddr,
}

#[derive(Debug, clap::Args)]
struct StoreArgs {
    #[arg(long, default_value = "s3gate-store-data")]
    data: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8014")]
    listen: SocketAddr,
    /// The one credential the store accepts, `AKID:SECRET`.
    #[arg(long, env = "S3GATE_STORE_CREDENTIALS")]
    credentials: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.log_json || std::env::var("S3GATE_LOG_FORMAT").is_ok_and(|v| v == "json");
    s3gate::telemetry::init(json);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("s3gate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("s3gate: {msg}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> Result<(), String> {
    match command {
        Command::Serve(args) => s3gate::run(args, s3gate::config::process_env()).await.map_err(|e| e.to_string()),
        Command::CheckConfig(args) => {
            let config = Config::load(&args, &s3gate::config::process_env()).map_err(|e| e.to_string())?;
            let endpoint = if config.endpoint {
                format!(
                    "endpoint {} -> {} ({}), {} client credential(s), {} route(s)",
                    config.listen,
                    config.upstream.url,
                    config.upstream.region,
                    config.keys.len(),
                    config.routes.len()
                )
            } else {
                "endpoint off".to_owned()
            };
            let forward = match &config.forward {
                Some(f) => format!("forward proxy {}", f.listen),
                None => "forward proxy off".to_owned(),
            };
            println!("config ok: {endpoint}; {forward}");
            Ok(())
        }
        Command::Demo(args) => demo(args).await,
        Command::Presign(args) => presign(&args),
        Command::Store(args) => {
            let cred = Credential::parse(&args.credentials).ok_or("--credentials: expected AKID:SECRET")?;
            let store = s3gate::store::Store::start(args.listen, &args.data, &cred).await.map_err(|e| e.to_string())?;
            println!("s3gate store: serving {} at {}", args.data.display(), store.url());
            s3gate::shutdown::signal().await;
            Ok(())
        }
    }
}

/// Prints only the URL, so that `curl "$(s3gate presign s3://b/k)"` works.
fn presign(args: &s3gate::presign::cli::PresignArgs) -> Result<(), String> {
    let now = time::OffsetDateTime::now_utc();
    let minted = s3gate::presign::cli::run(args, &s3gate::config::process_env(), now)?;
    println!("{}", minted.url);
    Ok(())
}

fn random_credential(prefix: &str) -> Credential {
    let mut rng = rand::thread_rng();
    let akid = format!("{prefix}{}", Alphanumeric.sample_string(&mut rng, 20 - prefix.len()).to_uppercase());
    Credential::new(akid, Alphanumeric.sample_string(&mut rng, 40))
}

async fn demo(args: DemoArgs) -> Result<(), String> {
    let upstream_cred = random_credential("STORE");
    let client_cred = random_credential("S3GATE");
    std::fs::create_dir_all(args.data.join("demo")).map_err(|e| format!("{}: {e}", args.data.display()))?;
    let store = s3gate::store::Store::start("127.0.0.1:0".parse().map_err(|_| "address")?, &args.data, &upstream_cred)
        .await
        .map_err(|e| e.to_string())?;
    let serve = ServeArgs {
        listen: Some(args.listen.to_string()),
        upstream: Some(store.url()),
        upstream_credentials: Some(format!("{}:{}", upstream_cred.access_key_id, upstream_cred.secret.expose())),
        credentials: vec![format!("{}:{}", client_cred.access_key_id, client_cred.secret.expose())],
        shutdown_grace: Some(2),
        ..ServeArgs::default()
    };
    let config = Config::load(&serve, &Default::default()).map_err(|e| e.to_string())?;
    let running = s3gate::start(config).await.map_err(|e| e.to_string())?;
    let ep = format!("http://{}", running.addr);
    println!(
        "\ns3gate demo: gateway {ep} -> embedded S3 store {} (data in {})\n\n\
         Client credentials (issued by s3gate; the store's own keys never leave it):\n\
         \x20 export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION=us-east-1\n\n\
         Try:\n\
         \x20 aws --endpoint-url {ep} s3 ls s3://demo\n\
         \x20 aws --endpoint-url {ep} s3 cp README.md s3://demo/\n\
         \x20 aws --endpoint-url {ep} s3 ls s3://demo\n\n\
         Ctrl-C stops it.\n",
        store.url(),
        args.data.display(),
        client_cred.access_key_id,
        client_cred.secret.expose()
    );
    s3gate::shutdown::signal().await;
    running.stop().await;
    store.stop();
    Ok(())
}
