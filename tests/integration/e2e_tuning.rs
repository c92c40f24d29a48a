//! End-to-end: the Tuning page in the real app, with and without the privilege to apply.

use super::{App, LONG};
use crate::harness::Pg;

/// Tuning: recommendations for an entered profile, only work_mem applied after confirming (the
/// server then has the recommended value and nothing else changed), then rolled back.
#[test]
fn tuning_applies_only_the_chosen_setting_and_rolls_it_back() {
    let pg = Pg::start(15);
    // postgresql.auto.conf as `name=value` lines (the test cluster starts with a few).
    let auto_conf = |except: &str| {
        pg.sql(
            "postgres",
            &format!(
                "SELECT coalesce(string_agg(name || '=' || setting, ',' ORDER BY seqno), '') \
                 FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' \
                 AND name <> '{except}'"
            ),
        )
    };
    let before = pg.sql("postgres", "SHOW work_mem");
    let conf_before = auto_conf("");
    assert!(!conf_before.contains("work_mem"), "{conf_before}");

    let app = App::launch();
    let s = &app.session;
    app.add_project("tune", &pg.uri("postgres"));
    s.click(&s.wait("tab-tuning", LONG));

    // 16 GB of RAM, 4 CPUs, SSD storage, a web application.
    let ram = s.wait("tune-ram", LONG);
    s.clear(&ram);
    s.type_text(&ram, "16GB");
    let cpus = s.wait("tune-cpus", LONG);
    s.clear(&cpus);
    s.type_text(&cpus, "4");
    s.click(&s.wait("tune-storage-ssd", LONG));
    s.click(&s.wait("tune-workload-web", LONG));
    s.click(&s.wait("tune-recommend", LONG));
    s.until("the memory budget chart", LONG, || {
        s.find_all("tune-memory-chart")
            .first()
            .and_then(|e| s.attr(e, "src"))
            .filter(|src| src.starts_with("data:image/svg+xml"))
    });
    let summary = s.text(&s.wait("tune-summary", LONG));
    assert!(
        summary.contains("16GB RAM") && summary.contains("4 CPUs"),
        "{summary}"
    );
    s.keep_screenshot("tuning");

    // Untick everything but work_mem (boxes start ticked where the value changes).
    let mut recommended = None;
    for item in s.find_all("tune-item") {
        let Some(check) = s.find_all_within(&item, "tune-check").into_iter().next() else {
            continue;
        };
        let setting = s.attr(&item, "data-setting").unwrap_or_default();
        let ticked = s.attr(&item, "data-changes").as_deref() == Some("true");
        let want = setting == "work_mem";
        if want {
            assert!(
                ticked,
                "work_mem should change from {before} for 16GB / web"
            );
            recommended = s.attr(&item, "data-recommended");
        }
        if ticked != want {
            s.click(&check);
        }
    }
    let recommended = recommended.expect("a work_mem recommendation");
    assert_ne!(recommended, before);

    // The confirmation lists work_mem alone, old → new.
    s.click(&s.wait("tune-apply", LONG));
    s.wait("tune-apply-dialog", LONG);
    let listed: Vec<String> = s
        .find_all("tune-confirm-item")
        .iter()
        .map(|e| s.text(e))
        .collect();
    s.keep_screenshot("tuning-confirm");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].contains("work_mem")
            && listed[0].contains(&before)
            && listed[0].contains(&recommended),
        "{listed:?}"
    );
    s.click(&s.wait("tune-confirm", LONG));

    // The read-back shows the new value; the server has it, and only it was written.
    s.until("the applied read-back", LONG, || {
        s.find_all("tune-applied")
            .into_iter()
            .find(|e| s.attr(e, "data-action").as_deref() == Some("apply"))
    });
    s.keep_screenshot("tuning-applied");
    let row = s.wait("tune-applied-row", LONG);
    assert_eq!(s.attr(&row, "data-setting").as_deref(), Some("work_mem"));
    assert_eq!(
        s.attr(&row, "data-now").as_deref(),
        Some(recommended.as_str())
    );
    assert_eq!(pg.sql("postgres", "SHOW work_mem"), recommended);
    assert_eq!(auto_conf("work_mem"), conf_before);
    assert!(
        auto_conf("").ends_with(&format!("work_mem={recommended}")),
        "{}",
        auto_conf("")
    );

    // Roll back, confirming, and the old value is back.
    s.click(&s.wait("tune-rollback", LONG));
    s.click(&s.wait("tune-rollback-confirm", LONG));
    s.until("the rollback read-back", LONG, || {
        s.find_all("tune-applied")
            .into_iter()
            .find(|e| s.attr(e, "data-action").as_deref() == Some("rollback"))
    });
    assert_eq!(pg.sql("postgres", "SHOW work_mem"), before);
    assert_eq!(auto_conf(""), conf_before);
}

/// A role without the ALTER SYSTEM privilege: the apply changes nothing, the message names the
/// privilege, and the SQL script and postgresql.conf lines are offered as text.
#[test]
fn tuning_without_the_privilege_offers_the_script() {
    let pg = Pg::start(15);
    pg.sql("postgres", "CREATE ROLE plain LOGIN PASSWORD 'plain-pw'");
    let before = pg.sql("postgres", "SHOW work_mem");

    let app = App::launch();
    let s = &app.session;
    app.add_project("plain", &pg.cluster.uri("plain", "plain-pw", "postgres"));
    s.click(&s.wait("tab-tuning", LONG));
    let ram = s.wait("tune-ram", LONG);
    s.clear(&ram);
    s.type_text(&ram, "16GB");
    let cpus = s.wait("tune-cpus", LONG);
    s.clear(&cpus);
    s.type_text(&cpus, "4");
    s.click(&s.wait("tune-recommend", LONG));
    s.wait("tune-item", LONG);

    // Apply what is ticked by default.
    s.click(&s.wait("tune-apply", LONG));
    s.click(&s.wait("tune-confirm", LONG));
    let panel = s.wait("tune-permission", LONG);
    let text = s.text(&panel);
    assert!(
        text.contains("GRANT ALTER SYSTEM ON PARAMETER") && text.contains("Nothing was changed"),
        "{text}"
    );
    let script = s.text(&s.wait("tune-script-sql", LONG));
    assert!(
        script.contains("ALTER SYSTEM SET \"work_mem\" = '"),
        "{script}"
    );
    let conf = s.text(&s.wait("tune-conf-snippet", LONG));
    assert!(conf.contains("work_mem = '"), "{conf}");
    assert!(s.find_all("tune-applied").is_empty());
    assert_eq!(pg.sql("postgres", "SHOW work_mem"), before);
    s.keep_screenshot("tuning-permission");
}
