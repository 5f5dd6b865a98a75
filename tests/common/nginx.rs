//! A real nginx (Debian's) in front of castgate, configured by exactly the file the README
//! recommends (`config/nginx-castgate.conf`), with only its listen address, upstream address
//! and cache directory replaced. Both integration-test crates (`gateway`, `browser`) include
//! this with `#[path]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx, stopped when dropped.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub binary: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM: fast shutdown, the master takes its workers with it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The installed nginx, if any.
pub fn find_nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The installed nginx; panics when there is none.
pub fn nginx_binary() -> PathBuf {
    find_nginx().unwrap_or_else(|| {
        panic!("nginx is not installed (scripts/test.sh installs Debian's nginx package)")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts nginx with the repository's edge configuration on a free loopback port, proxying
/// to `origin`; its configuration, cache, logs and temporary files go under `dir`.
pub fn start_nginx(origin: SocketAddr, dir: &Path) -> Nginx {
    let binary = nginx_binary();
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/nginx-castgate.conf"),
    )
    .expect("config/nginx-castgate.conf");
    let port = free_port();
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).expect("create the nginx cache dir");
    let replace = |text: String, from: &str, to: &str| {
        assert!(
            text.contains(from),
            "the nginx config no longer has {from:?}"
        );
        text.replacen(from, to, 1)
    };
    let conf = replace(
        template,
        "listen 8081;",
        &format!("listen 127.0.0.1:{port};"),
    );
    let conf = replace(conf, "server 127.0.0.1:8080;", &format!("server {origin};"));
    let conf = replace(
        conf,
        "/var/cache/nginx/castgate",
        &cache.display().to_string(),
    );
    std::fs::write(dir.join("castgate.conf"), conf).expect("write castgate.conf");
    let d = dir.display();
    // A minimal main configuration around the snippet, everything under `dir`.
    let main = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         user root;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/castgate.conf;\n}}\n"
    );
    let main_path = dir.join("nginx.conf");
    std::fs::write(&main_path, main).expect("write nginx.conf");
    let child = Command::new(&binary)
        .arg("-c")
        .arg(&main_path)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    Nginx {
        child,
        port,
        binary,
    }
}
