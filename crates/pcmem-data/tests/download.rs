//! The downloader against a server on 127.0.0.1: a good file is verified and kept; a wrong
//! checksum, a truncated transfer and a server error leave nothing that looks valid behind.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use pcmem_data::download::{digest_file, fetch, Expected};
use pcmem_data::DataError;

/// Serves each canned response once, in order, on a fresh port; returns the base URL.
fn serve(responses: Vec<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for resp in responses {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&resp);
        }
    });
    format!("http://{addr}")
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn expected_for(body: &[u8]) -> Expected {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), body).unwrap();
    let d = digest_file(tmp.path()).unwrap();
    Expected {
        bytes: Some(d.bytes),
        md5: Some(d.md5),
        sha256: Some(d.sha256),
    }
}

fn no_leftovers(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn good_file_is_verified_kept_and_not_fetched_twice() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let want = expected_for(&body);
    // Only one response: a second fetch must be served from disk.
    let base = serve(vec![ok(&body)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("data.bin");
    let got = fetch(&format!("{base}/data.bin"), &dest, &want, false).unwrap();
    assert_eq!(Some(got.sha256.clone()), want.sha256);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let again = fetch(&format!("{base}/data.bin"), &dest, &want, false).unwrap();
    assert_eq!(again, got);
}

#[test]
fn wrong_checksum_is_rejected_and_deleted() {
    let body = b"these are not the bytes you are looking for".to_vec();
    let mut want = expected_for(&body);
    want.md5 = Some("00000000000000000000000000000000".into());
    let base = serve(vec![ok(&body)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("archive.tar.gz");
    let err = fetch(&format!("{base}/archive.tar.gz"), &dest, &want, false).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Checksum {
                algorithm: "md5",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("archive.tar.gz"));
    no_leftovers(dir.path());
}

#[test]
fn truncated_transfer_is_rejected_and_deleted() {
    let body: Vec<u8> = vec![7u8; 50_000];
    let want = expected_for(&body);
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body[..20_000]);
    let base = serve(vec![resp]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.bin");
    let err = fetch(&format!("{base}/big.bin"), &dest, &want, false).unwrap_err();
    assert!(
        matches!(err, DataError::Download { .. } | DataError::Checksum { .. }),
        "{err}"
    );
    no_leftovers(dir.path());
}

#[test]
fn server_error_names_the_url_and_where_to_put_the_file() {
    let resp =
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops"
            .to_vec();
    let base = serve(vec![resp]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.gz");
    let err = fetch(&format!("{base}/x.gz"), &dest, &expected_for(b"x"), false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Download { .. }), "{msg}");
    assert!(
        msg.contains(&format!("{base}/x.gz")) && msg.contains("x.gz") && msg.contains("500"),
        "{msg}"
    );
    no_leftovers(dir.path());
}

#[test]
fn a_corrupt_cached_file_is_replaced_by_a_verified_download() {
    let body = b"correct content".to_vec();
    let want = expected_for(&body);
    let base = serve(vec![ok(&body)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    std::fs::write(&dest, b"stale corrupt content").unwrap();
    fetch(&format!("{base}/f.bin"), &dest, &want, false).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}
