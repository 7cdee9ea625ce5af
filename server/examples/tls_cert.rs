//! `cargo run -p annal-server --example tls_cert -- DIR`: writes a throwaway CA (`ca.pem`) and a
//! server certificate it signs for `localhost` and `127.0.0.1` (`cert.pem`, `key.pem`) into
//! DIR, for trying TLS locally (the compatibility script uses it). Not for production.

#[path = "../tests/it/certs.rs"]
mod certs;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os().nth(1).map(std::path::PathBuf::from);
    let Some(dir) = dir else {
        eprintln!("usage: tls_cert DIR");
        std::process::exit(2);
    };
    let certs = certs::generate();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ca.pem"), certs.ca_pem)?;
    std::fs::write(dir.join("cert.pem"), certs.cert_pem)?;
    std::fs::write(dir.join("key.pem"), certs.key_pem)?;
    Ok(())
}
