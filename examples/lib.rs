//! Examples that embed the Portcullis crates. The programs are the
//! `[[example]]` targets of this package; run one with
//! `cargo run -p portcullis-examples --example starttls-receiver`.
