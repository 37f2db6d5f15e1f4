//! `cargo xtask test`: every test of the workspace, then the TLS connection case again
//! with both backends built with `tls-rustls` (a separate build: feature unification
//! would otherwise turn TLS on for every test, hiding the "no TLS feature refuses
//! rediss://" behaviour).

/// Runs all tests.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("`xtask test` takes no arguments, got {a:?}"));
    }
    crate::cargo(&["test", "--workspace"])?;
    eprintln!("xtask: building the backends with tls-rustls for the TLS case (a second build)…");
    crate::cargo(&[
        "test",
        "-p",
        "tests-conformance",
        "--features",
        "tls-rustls",
        "--test",
        "it",
        "rediss_needs_a_tls_feature",
    ])
}
