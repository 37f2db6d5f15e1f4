# Convenience recipes; each is a plain cargo command (just is optional).

# Run the conformance table (starts its own redis-server unless URL is given).
conformance *ARGS:
    cargo xtask conformance {{ARGS}}

# Run every test, as CI does.
test:
    cargo xtask test

# Formatting, lints and docs, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
