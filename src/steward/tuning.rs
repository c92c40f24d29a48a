//! Tuning flows of the front door: the project's hardware profile, recommendations from the
//! rules and the evidence (statistics and monitoring history), apply and roll back.

use std::path::PathBuf;

use super::Steward;
use crate::conn::spec::ProcessEnv;
use crate::error::Result;
use crate::sql;
use crate::tune::{self, ApplyReport, HardwareProfile, ProfileInput, SettingChange, TuneReport};

impl Steward {
    fn tune_dir(&self, name: &str) -> Result<PathBuf> {
        Ok(self.store.project_dir(name)?.join("tune"))
    }

    /// The saved tuning profile of a project, if any.
    pub fn tune_profile(&self, name: &str) -> Result<Option<HardwareProfile>> {
        self.store.get(name)?;
        tune::profile::load(&self.tune_dir(name)?.join("profile.json"))
    }

    /// Build the project's profile from what was entered, the saved profile and, when the
    /// server runs on this machine, detection; save it and return it.
    pub async fn tune_profile_save(
        &self,
        name: &str,
        input: &ProfileInput,
    ) -> Result<HardwareProfile> {
        let project = self.store.get(name)?;
        tune::profile::check_input(input)?;
        let path = self.tune_dir(name)?.join("profile.json");
        let saved = tune::profile::load(&path)?;
        let r = project.conn.resolve(&ProcessEnv)?;
        let local = r.is_socket() || matches!(r.host.as_str(), "localhost" | "127.0.0.1" | "::1");
        let detected = if local {
            let device = self.data_directory_device(name).await;
            tune::profile::detect_under(std::path::Path::new("/"), device.as_deref())
        } else {
            // A remote server: read its hardware through it when the role may read server files.
            match self.pool(name)?.acquire().await {
                Ok(mut conn) => tune::server_detect::detect(&mut conn)
                    .await
                    .unwrap_or_default(),
                Err(_) => tune::profile::Detected::default(),
            }
        };
        let profile = tune::profile::resolve(input, saved.as_ref(), &detected)?;
        if saved.as_ref() != Some(&profile) {
            tune::profile::save(&path, &profile)?;
        }
        Ok(profile)
    }

    /// `major:minor` of the device holding the server's data directory, when readable here.
    async fn data_directory_device(&self, name: &str) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let mut conn = self.pool(name).ok()?.acquire().await.ok()?;
        let dir: Option<String> = sqlx::query_scalar(sql!(
            "SELECT setting FROM pg_settings WHERE name = 'data_directory'"
        ))
        .fetch_optional(&mut *conn)
        .await
        .ok()
        .flatten();
        let dev = std::fs::metadata(dir?).ok()?.dev();
        Some(format!(
            "{}:{}",
            nix::sys::stat::major(dev),
            nix::sys::stat::minor(dev)
        ))
    }

    /// Recommendations for the project's server: PGTune's baseline for the profile and the
    /// evidence of the server's statistics, inside the server's bounds, grouped.
    pub async fn tune_recommend(&self, name: &str, input: &ProfileInput) -> Result<TuneReport> {
        let profile = self.tune_profile_save(name, input).await?;
        let mut conn = self.pool(name)?.acquire().await?;
        let (version, num): (String, i32) = sqlx::query_as(sql!(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int"
        ))
        .fetch_one(&mut *conn)
        .await
        .inspect_err(|_| conn.discard())?;
        let major = (num / 10000) as u32;
        let settings = tune::bounds::read(&mut conn, &[]).await?;
        let recent = self.recent_evidence(name).await;
        let (findings, evidence_error) = match tune::advisor::gather(&mut conn, major).await {
            Ok(mut ev) => (
                {
                    ev.recent = recent;
                    tune::advisor::advise(&ev, &settings, tune::slow_query_threshold_ms())
                },
                None,
            ),
            Err(e) => (vec![], Some(e)),
        };
        let groups = tune::recommend::build(&profile, major, &settings, &findings);
        let memory = tune::recommend::budget(profile.ram_kb, &settings, &groups);
        let (script_sql, conf_snippet) = tune::recommend::scripts(name, &groups);
        Ok(TuneReport {
            project: name.to_string(),
            server_version: version,
            server_version_num: num,
            memory_chart_svg: tune::chart::memory_budget_svg(&memory),
            profile,
            groups,
            memory,
            script_sql,
            conf_snippet,
            evidence_error,
        })
    }

    /// Change settings with ALTER SYSTEM and reload; the previous values go to the project's
    /// tuning history for [`Steward::tune_rollback`].
    pub async fn tune_apply(&self, name: &str, changes: &[SettingChange]) -> Result<ApplyReport> {
        let history = self.tune_dir(name)?.join("history.json");
        let mut conn = self.pool(name)?.acquire().await?;
        let major = server_major(&mut conn).await?;
        tune::apply::apply(&mut conn, name, major, changes, &history).await
    }

    /// Restore the values the latest apply replaced.
    pub async fn tune_rollback(&self, name: &str) -> Result<ApplyReport> {
        let history = self.tune_dir(name)?.join("history.json");
        let mut conn = self.pool(name)?.acquire().await?;
        let major = server_major(&mut conn).await?;
        tune::apply::rollback(&mut conn, name, major, &history).await
    }
}

async fn server_major(conn: &mut crate::conn::PooledConn) -> Result<u32> {
    let num: i32 = sqlx::query_scalar(sql!("SELECT current_setting('server_version_num')::int"))
        .fetch_one(&mut **conn)
        .await?;
    Ok((num / 10000) as u32)
}
