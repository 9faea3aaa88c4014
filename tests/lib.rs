//! Helpers for the end-to-end tests: a temporary `/opt/ml` tree and the real binaries.

use common::datagen::{self, Layout};
use common::opt_ml::OptMl;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary SageMaker root with the usual sub-directories.
pub struct Sandbox {
    _dir: tempfile::TempDir,
    /// The paths inside it.
    pub opt_ml: OptMl,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// An empty tree: `input/config`, `input/data`, `model`, `output/data`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let opt_ml = OptMl::at(dir.path());
        for d in [
            opt_ml.config_dir(),
            opt_ml.data_dir(),
            opt_ml.model_dir(),
            opt_ml.output_data_dir(),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        Self { _dir: dir, opt_ml }
    }

    /// Writes a config file (`hyperparameters.json`, ...) verbatim.
    pub fn config(&self, name: &str, json: &str) -> &Self {
        std::fs::write(self.opt_ml.config_dir().join(name), json).unwrap();
        self
    }

    /// Writes a file into a channel, creating directories.
    pub fn data_file(&self, channel: &str, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.opt_ml.channel_dir(channel).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Writes `rows` generated fire rows (seeded) into a channel file in `layout`.
    pub fn fire_file(
        &self,
        channel: &str,
        name: &str,
        rows: usize,
        seed: u64,
        layout: Layout,
    ) -> PathBuf {
        self.data_file(channel, name, &fire_bytes(rows, seed, layout))
    }

    /// The first line of `output/failure`, if written.
    pub fn failure_reason(&self) -> Option<String> {
        std::fs::read_to_string(self.opt_ml.failure_file())
            .ok()
            .map(|s| s.lines().next().unwrap_or("").to_owned())
    }

    /// Runs the real `train` binary against this tree.
    pub fn run_train(&self) -> Output {
        self.train_command().output().expect("run train")
    }

    /// Runs `train` and, once a stdout line starts with `line_prefix`, sends it SIGTERM (with
    /// the kill command, as `docker stop` does); stdout is read to its end meanwhile (a closed or
    /// full pipe would stall the job's printing). Returns the exit status and the time from the
    /// signal to the exit.
    pub fn train_stopped_at(
        &self,
        line_prefix: &str,
    ) -> (std::process::ExitStatus, std::time::Duration) {
        self.train_signalled_at(line_prefix, "TERM")
    }

    /// [`Sandbox::train_stopped_at`] with another signal (`KILL`: a reclaimed spot instance).
    pub fn train_signalled_at(
        &self,
        line_prefix: &str,
        signal: &str,
    ) -> (std::process::ExitStatus, std::time::Duration) {
        let mut child = self
            .train_command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn train");
        let stdout = child.stdout.take().expect("piped stdout");
        let (seen, reached) = std::sync::mpsc::channel();
        let prefix = line_prefix.to_owned();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                if line.is_ok_and(|l| l.starts_with(&prefix)) {
                    let _ = seen.send(());
                }
            }
        });
        reached
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("train never printed a line starting {line_prefix:?}"));
        let sent = std::time::Instant::now();
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill");
        let status = child.wait().expect("wait for train");
        let took = sent.elapsed();
        reader.join().expect("stdout reader");
        (status, took)
    }

    /// The `train` command with `SAGEMAKER_BASE_DIR` pointing here.
    pub fn train_command(&self) -> Command {
        let mut c = Command::new(binary("train"));
        c.arg("train")
            .env("SAGEMAKER_BASE_DIR", self.opt_ml.root())
            .env("RUST_LOG", "info");
        c
    }

    /// Kills this job (SIGKILL, as a reclaimed spot instance) once it prints a line starting
    /// `line`, checks it left checkpoints `<prefix><n>` in `dir` and that running it again
    /// resumes from the newest; returns that number and the resumed run's first stdout line.
    pub fn killed_and_resumed(&self, line: &str, dir: &Path, prefix: &str) -> (u32, String) {
        let (status, _) = self.train_signalled_at(line, "KILL");
        assert!(!status.success(), "the job ended before it was killed");
        let newest = *checkpoint_numbers(dir, prefix)
            .last()
            .expect("checkpoints before the kill");
        let out = self.run_train();
        let log = text(&out.stderr);
        assert!(out.status.success(), "{log}");
        assert!(
            log.contains(&format!("Resuming from iteration {newest}")),
            "{log}"
        );
        let first = text(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        (newest, first)
    }
}

/// The numbers of the checkpoints `<prefix><n>` in `dir`, smallest first (other files, such as
/// one left half-written as `.sagemaker-ignore`, are not checkpoints).
pub fn checkpoint_numbers(dir: &Path, prefix: &str) -> Vec<u32> {
    let mut numbers: Vec<u32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            name.strip_prefix(prefix)?.parse().ok()
        })
        .collect();
    numbers.sort_unstable();
    numbers
}

/// Generated fire rows (generator rows plus a sixth as many demo rows) in `layout`.
pub fn fire_bytes(rows: usize, seed: u64, layout: Layout) -> Vec<u8> {
    let data = datagen::fire_mix(seed, rows - rows / 6, rows / 6);
    let mut out = Vec::new();
    datagen::write_rows(&data, layout, &mut out).unwrap();
    out
}

/// Small, fast model settings for tests.
pub const SMALL_MODELS: &str = r#""rf_num_trees": "20", "gb_num_round": "20", "rf_max_depth": "6""#;

/// The path of a workspace binary, built next to this test executable
/// (`target/<profile>/deps/e2e-*` → `target/<profile>/<name>`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        path.display()
    );
    path
}

/// Text of a process output stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `serve` process on a free loopback port, killed on drop.
pub struct Server {
    child: std::process::Child,
    /// The port it listens on (`SAGEMAKER_BIND_TO_PORT`).
    pub port: u16,
    log: tempfile::NamedTempFile,
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        text(&self.body)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `serve` for `opt_ml` with extra environment variables (not waiting for readiness).
    pub fn start(opt_ml: &OptMl, envs: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(binary("serve"))
            .arg("serve")
            .env("SAGEMAKER_BASE_DIR", opt_ml.root())
            .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
            .envs(envs.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start serve");
        Self { child, port, log }
    }

    /// Starts `serve` and waits (up to 20 s) for `/ping` to answer 200.
    pub fn ready(opt_ml: &OptMl, envs: &[(&str, &str)]) -> Self {
        let s = Self::start(opt_ml, envs);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if s.try_request("GET", "/ping", &[], b"")
                .is_ok_and(|r| r.status == 200)
            {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("serve never became ready; log:\n{}", s.log());
    }

    /// The server process's resident memory now, in KiB (Linux).
    pub fn resident_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    /// The server's log so far.
    /// The server's CPU time so far (user and system), in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends one request (panics on connection errors).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; log:\n{}", self.log()))
    }

    /// Sends one request over a new connection (`Connection: close`).
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        http_request(self.port, method, path, headers, body)
    }

    /// Sends a POST /invocations body with `Transfer-Encoding: chunked`, in chunks of `chunk` bytes.
    pub fn post_chunked(&self, headers: &[(&str, &str)], body: &[u8], chunk: usize) -> Reply {
        let mut head = "POST /invocations HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n".to_owned();
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut framed = Vec::with_capacity(body.len() + body.len() / chunk * 12 + 16);
        for piece in body.chunks(chunk) {
            framed.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            framed.extend_from_slice(piece);
            framed.extend_from_slice(b"\r\n");
        }
        framed.extend_from_slice(b"0\r\n\r\n");
        exchange(self.port, head.as_bytes(), &framed).expect("chunked request")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one request to `127.0.0.1:port` over a new connection (`Connection: close`).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    exchange(port, head.as_bytes(), body)
}

fn exchange(port: u16, head: &[u8], body: &[u8]) -> std::io::Result<Reply> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(120)))?;
    s.write_all(head)?;
    // The server may answer (413) and close before the whole body is sent.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_reply(&raw).ok_or_else(|| {
        std::io::Error::other(format!(
            "malformed reply: {:?}",
            text(&raw[..raw.len().min(200)])
        ))
    })
}

fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// The repository's `sample-payloads/` file `name`.
pub fn sample_payload(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sample-payloads")
            .join(name),
    )
    .unwrap()
}

/// Trains a small fire model into `sandbox` (panics on failure).
pub fn train_small_fire_model(sandbox: &Sandbox, rows: usize) {
    sandbox.config("hyperparameters.json", &format!("{{{SMALL_MODELS}}}"));
    sandbox.fire_file("train", "data.json", rows, 21, Layout::Json);
    let out = sandbox.run_train();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The value of `var`, which scripts/test.sh sets to something it provisioned (`what`); `None`
/// (the test is skipped, with a message) when it is unset outside CI; under `CI=true` a missing
/// value fails the test, since CI must run everything.
pub fn provisioned(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but {var} is not set: scripts/test.sh provisions {what}")
        }
        _ => {
            eprintln!("skipping: {var} is not set ({what}, provisioned by scripts/test.sh)");
            None
        }
    }
}

/// The Python of the real SageMaker Python SDK v2 (scripts/sdk-venv.sh).
pub fn sdk_python() -> Option<String> {
    provisioned(
        "SDK_PYTHON",
        "the SageMaker Python SDK with scripts/sdk-venv.sh",
    )
}

/// Trains a small model of `kind` (`fire`, `iops`, or `tabular`: XGBoost on California housing)
/// into `sandbox` (panics on failure).
pub fn train_small_model(sandbox: &Sandbox, kind: &str) {
    match kind {
        "fire" => return train_small_fire_model(sandbox, 3000),
        "tabular" => {
            sandbox.config(
                "hyperparameters.json",
                r#"{"model_kind": "tabular", "candidates": "xgboost"}"#,
            );
            let housing = std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../datasets/california_housing_targetfirst.csv.gz"
            ))
            .unwrap();
            sandbox.data_file("train", "housing.csv.gz", &housing);
        }
        _ => {
            use common::datagen::{self, iops as gen};
            sandbox.config("hyperparameters.json", r#"{"model_kind": "iops"}"#);
            let mut bytes = Vec::new();
            gen::write(
                &gen::insights(&mut datagen::rng(6), 3000),
                gen::IopsLayout::Json,
                &mut bytes,
            )
            .unwrap();
            sandbox.data_file("train", "insights.json", &bytes);
        }
    }
    let out = sandbox.run_train();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Applies every regex of the README metric table under `heading` to `log` (tabs shown as `#011`,
/// as CloudWatch shows them), checking each matches a line and captures a finite number; returns
/// how many rows were checked.
pub fn check_readme_metric_regexes(heading: &str, log: &str) -> usize {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let row = regex::Regex::new(r"^\| `([a-z0-9_:-]+)` \| `(.+?)` \|").unwrap();
    let section = readme
        .split(&format!("{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README section {heading}"));
    let section = section.split("\n#").next().unwrap();
    let mut checked = 0;
    for line in section.lines() {
        let Some(c) = row.captures(line) else {
            continue;
        };
        let (name, pattern) = (&c[1], c[2].replace("\\|", "|"));
        let re = regex::Regex::new(&pattern).unwrap_or_else(|e| panic!("{name}: {e}"));
        let last = log
            .lines()
            .filter_map(|l| re.captures(l))
            .next_back()
            .unwrap_or_else(|| panic!("{name}: `{pattern}` matches no log line"));
        let value: f64 = last[1]
            .parse()
            .unwrap_or_else(|_| panic!("{name}: captured '{}' is not a number", &last[1]));
        assert!(value.is_finite(), "{name}");
        checked += 1;
    }
    checked
}

/// A JSON answer's list of numbers (e.g. a record's `contributions`).
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|c| c.as_f64().unwrap())
        .collect()
}
