//! A mount request's attributes JSON (SecretProviderClass parameters plus
//! pod information): any bytes must parse or be rejected cleanly.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vault_csi::fuzzing::parse_attributes(data));
