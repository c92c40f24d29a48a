//! `project storage`, `project copy-target` and `backup copy`: where backups are written and
//! copied to. S3 secret access keys are read from standard input and go to the OS keyring.

use clap::Args;
use pgsteward::backup::{S3Settings, StorageSettings};
use pgsteward::jobs::CancelToken;
use pgsteward::steward::StorageInfo;
use pgsteward::{Error, Steward};

use crate::output::{out, progress, read_secret};

/// S3 settings given on the command line.
#[derive(Args)]
pub struct S3Args {
    /// S3 bucket (it must exist).
    #[arg(long)]
    s3_bucket: Option<String>,
    /// Endpoint URL of an S3-compatible service (default: AWS).
    #[arg(long, requires = "s3_bucket")]
    s3_endpoint: Option<String>,
    /// Folder inside the bucket; the project's own folder goes below it.
    #[arg(long, default_value = "", requires = "s3_bucket")]
    s3_prefix: String,
    #[arg(long, default_value = "us-east-1", requires = "s3_bucket")]
    s3_region: String,
    /// Allow a plain-HTTP endpoint (trusted networks only).
    #[arg(long, requires = "s3_bucket")]
    s3_allow_http: bool,
    #[arg(long, requires = "s3_bucket")]
    s3_access_key_id: Option<String>,
    /// Read the secret access key from standard input (it goes to the OS keyring). Without
    /// it, the key stored before is kept.
    #[arg(long, requires = "s3_bucket")]
    s3_secret_stdin: bool,
    /// Save without checking that the service accepts the credentials.
    #[arg(long, requires = "s3_bucket")]
    no_check: bool,
}

impl S3Args {
    /// The settings and the secret, or `None` when no bucket was given.
    #[allow(clippy::type_complexity)]
    fn take(&self) -> Result<Option<(S3Settings, Option<zeroize::Zeroizing<String>>)>, Error> {
        let Some(bucket) = &self.s3_bucket else {
            return Ok(None);
        };
        let access_key_id = self
            .s3_access_key_id
            .clone()
            .ok_or_else(|| Error::invalid_input("S3 storage needs --s3-access-key-id."))?;
        let secret = if self.s3_secret_stdin {
            Some(read_secret(true, "S3 secret access key")?)
        } else {
            None
        };
        Ok(Some((
            S3Settings {
                bucket: bucket.clone(),
                prefix: self.s3_prefix.clone(),
                endpoint: self.s3_endpoint.clone(),
                region: self.s3_region.clone(),
                allow_http: self.s3_allow_http,
                access_key_id,
            },
            secret,
        )))
    }
}

fn print_info(name: &str, i: &StorageInfo) {
    println!("backups of {name}: {}", i.location);
    if let StorageSettings::S3(_) = i.storage {
        println!(
            "  secret access key: {}",
            if i.has_secret {
                "in the OS keyring"
            } else {
                "missing"
            }
        );
    }
    match &i.copy_location {
        Some(c) => println!(
            "copy target: {c} (secret access key {})",
            if i.copy_has_secret {
                "in the OS keyring"
            } else {
                "missing"
            }
        ),
        None => println!("copy target: none"),
    }
}

/// `project storage NAME [--local | --folder PATH | --s3-bucket ...]`; without options it shows
/// the settings.
pub fn storage(
    st: &Steward,
    json: bool,
    name: &str,
    local: bool,
    folder: Option<String>,
    s3: &S3Args,
) -> Result<(), Error> {
    let info = if local {
        st.set_storage(name, StorageSettings::Local, None, false)?
    } else if let Some(path) = folder {
        st.set_storage(name, StorageSettings::Folder { path }, None, true)?
    } else if let Some((settings, secret)) = s3.take()? {
        st.set_storage(
            name,
            StorageSettings::S3(settings),
            secret.as_deref().map(|s| s.as_str()),
            !s3.no_check,
        )?
    } else {
        st.storage_info(name)?
    };
    out(json, &info, |i| print_info(name, i));
    Ok(())
}

/// `project copy-target NAME [--none | --s3-bucket ...]`.
pub fn copy_target(
    st: &Steward,
    json: bool,
    name: &str,
    none: bool,
    s3: &S3Args,
) -> Result<(), Error> {
    let info = if none {
        st.set_copy_target(name, None, None, false)?
    } else if let Some((settings, secret)) = s3.take()? {
        st.set_copy_target(
            name,
            Some(settings),
            secret.as_deref().map(|s| s.as_str()),
            !s3.no_check,
        )?
    } else {
        st.storage_info(name)?
    };
    out(json, &info, |i| print_info(name, i));
    Ok(())
}

/// `backup copy NAME [ID]`.
pub async fn copy(st: &Steward, json: bool, name: &str, id: Option<&str>) -> Result<(), Error> {
    let (sink, bar) = progress(json);
    let r = st.backup_copy(name, id, sink, CancelToken::default()).await;
    bar.clear();
    let rep = r?;
    out(json, &rep, |r| {
        for id in &r.copied {
            println!("copied and verified {id}");
        }
        for id in &r.already_there {
            println!("{id} already on the target");
        }
        println!(
            "{} backup(s) copied; {} on {}",
            r.copied.len(),
            r.target_backups.len(),
            r.target
        );
    });
    Ok(())
}
