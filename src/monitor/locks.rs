//! Who blocks whom: the lock waits of the server as a tree, root blockers first.
//!
//! When sessions pile up behind a lock, the list of waiting sessions hides the one that matters:
//! the root blocker, which waits for nothing itself (often a forgotten transaction sitting idle).
//! This builds a tree from `pg_blocking_pids`: roots are sessions that block others and are not
//! blocked, and every waiter sits under the sessions it waits for, with the lock mode it asks for
//! (`pg_locks`, not granted), the relation when known, and how long it has waited. Wait cycles
//! (a deadlock the server has not resolved yet) are marked, and the walk never loops.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;
use sqlx::Row;
use ts_rs::TS;

use crate::conn::PooledConn;
use crate::error::Result;
use crate::sql;

/// Most sessions read into one tree.
pub const MAX_SESSIONS: i64 = 2000;
/// Deepest chain shown; deeper waiters are summarised.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Default, Serialize, TS)]
pub struct BlockingNode {
    pub pid: i32,
    pub user: Option<String>,
    pub database: Option<String>,
    pub application: Option<String>,
    pub state: Option<String>,
    pub query: Option<String>,
    pub wait_event_type: Option<String>,
    pub wait_event: Option<String>,
    /// Lock mode this session waits for, e.g. "ShareLock", "AccessExclusiveLock".
    pub waiting_for_mode: Option<String>,
    /// Kind of lock it waits for: "relation", "transactionid", "tuple"...
    pub lock_type: Option<String>,
    /// Relation involved, when known (in the database pgsteward is connected to).
    pub relation: Option<String>,
    pub waiting_seconds: Option<f64>,
    /// Age of the session's open transaction.
    pub xact_seconds: Option<f64>,
    /// Every session it waits for (it is shown under the first one the walk reaches).
    pub blocked_by: Vec<i32>,
    /// Sessions waiting behind this one, directly or further down.
    pub blocks_total: u32,
    /// Part of a wait cycle: the server's deadlock detector will cancel one of them.
    pub in_cycle: bool,
    /// This session's subtree is already shown elsewhere in the tree.
    pub shown_elsewhere: bool,
    /// Something the row alone does not say (prepared transaction, ended session...).
    pub note: Option<String>,
    pub children: Vec<BlockingNode>,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct BlockingTree {
    pub roots: Vec<BlockingNode>,
    /// Sessions waiting for a lock held by another session.
    pub waiting: u32,
    /// Some sessions wait for each other in a cycle.
    pub cycles: bool,
    /// More sessions were involved than were read.
    pub truncated: bool,
    pub sampled_at: String,
}

/// Read the lock waits and build the tree.
pub async fn blocking_tree(conn: &mut PooledConn) -> Result<BlockingTree> {
    // waitstart exists from PostgreSQL 14 on; reading it through to_jsonb keeps one statement
    // that also runs on older servers (where it is simply absent).
    let rows = sqlx::query(sql!(
        "WITH waiting AS (
            SELECT a.pid, pg_blocking_pids(a.pid) AS blocked_by
              FROM pg_stat_activity a
             WHERE a.wait_event_type = 'Lock'
         ), involved AS (
            SELECT pid FROM waiting WHERE cardinality(blocked_by) > 0
            UNION
            SELECT unnest(blocked_by) FROM waiting
         ), here AS (
            SELECT oid FROM pg_database WHERE datname = current_database()
         )
         SELECT i.pid, a.pid IS NOT NULL AS present,
                a.usename::text AS usename, a.datname::text AS datname, a.application_name, a.state,
                left(a.query, $1) AS query, a.wait_event_type, a.wait_event,
                coalesce(w.blocked_by, '{}'::int4[]) AS blocked_by,
                l.mode, l.locktype,
                coalesce(l.relname, t.relname) AS relname,
                CASE WHEN cardinality(w.blocked_by) > 0 THEN
                     extract(epoch FROM clock_timestamp()
                             - coalesce(l.waitstart, a.state_change))::float8 END AS waiting_s,
                extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS xact_s
           FROM involved i
           LEFT JOIN pg_stat_activity a ON a.pid = i.pid
           LEFT JOIN waiting w ON w.pid = i.pid
           LEFT JOIN LATERAL (
                SELECT l.mode, l.locktype,
                       (to_jsonb(l) ->> 'waitstart')::timestamptz AS waitstart,
                       CASE WHEN l.relation IS NOT NULL AND l.database = (SELECT oid FROM here)
                            THEN l.relation::regclass::text END AS relname
                  FROM pg_locks l
                 WHERE l.pid = i.pid AND NOT l.granted
                 LIMIT 1) l ON true
           LEFT JOIN LATERAL (
                SELECT l.relation::regclass::text AS relname
                  FROM pg_locks l
                 WHERE l.pid = i.pid AND l.granted AND l.locktype = 'tuple'
                   AND l.database = (SELECT oid FROM here)
                 LIMIT 1) t ON true
          ORDER BY i.pid
          LIMIT $2"
    ))
    .bind(super::activity::QUERY_TEXT_LIMIT)
    .bind(MAX_SESSIONS + 1)
    .fetch_all(&mut **conn)
    .await?;
    let truncated = rows.len() as i64 > MAX_SESSIONS;
    let nodes: Vec<BlockingNode> = rows
        .iter()
        .take(MAX_SESSIONS as usize)
        .map(|r| {
            let pid: i32 = r.get("pid");
            let present: bool = r.get("present");
            BlockingNode {
                pid,
                user: r.get("usename"),
                database: r.get("datname"),
                application: r
                    .get::<Option<String>, _>("application_name")
                    .filter(|a| !a.is_empty()),
                state: r.get("state"),
                query: r.get("query"),
                wait_event_type: r.get("wait_event_type"),
                wait_event: r.get("wait_event"),
                waiting_for_mode: r.get("mode"),
                lock_type: r.get("locktype"),
                relation: r.get("relname"),
                waiting_seconds: r.get("waiting_s"),
                xact_seconds: r.get("xact_s"),
                blocked_by: r.get("blocked_by"),
                note: (!present).then(|| missing_note(pid)),
                ..Default::default()
            }
        })
        .collect();
    Ok(build(nodes, truncated))
}

fn missing_note(pid: i32) -> String {
    if pid == 0 {
        "A prepared transaction holds the lock (see pg_prepared_xacts; COMMIT PREPARED or ROLLBACK PREPARED releases it).".into()
    } else {
        "This session is no longer listed in pg_stat_activity; it may just have ended.".into()
    }
}

/// Build the tree from flat nodes (children empty, `blocked_by` set). Pure; never loops.
pub fn build(nodes: Vec<BlockingNode>, truncated: bool) -> BlockingTree {
    let mut info: BTreeMap<i32, BlockingNode> = nodes.into_iter().map(|n| (n.pid, n)).collect();
    // Blockers that were not read (ended meanwhile, prepared transactions) get a placeholder.
    let referenced: Vec<i32> = info
        .values()
        .flat_map(|n| n.blocked_by.iter().copied())
        .collect();
    for pid in referenced {
        info.entry(pid).or_insert_with(|| BlockingNode {
            pid,
            note: Some(missing_note(pid)),
            ..Default::default()
        });
    }
    for n in info.values_mut() {
        n.blocked_by.sort_unstable();
        n.blocked_by.dedup();
        n.blocked_by.retain(|b| *b != n.pid);
    }
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for n in info.values() {
        for b in &n.blocked_by {
            children.entry(*b).or_default().push(n.pid);
        }
    }
    let waiters: BTreeSet<i32> = info
        .values()
        .filter(|n| !n.blocked_by.is_empty())
        .map(|n| n.pid)
        .collect();

    // Everything reachable downwards from each node, and whether the node reaches itself.
    let reach = |start: i32| -> (BTreeSet<i32>, bool) {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<i32> = children.get(&start).cloned().unwrap_or_default();
        let mut cyclic = false;
        while let Some(p) = stack.pop() {
            if p == start {
                cyclic = true;
                continue;
            }
            if seen.insert(p) {
                stack.extend(children.get(&p).into_iter().flatten().copied());
            }
        }
        (seen, cyclic)
    };
    let mut any_cycle = false;
    let pids: Vec<i32> = info.keys().copied().collect();
    for pid in &pids {
        let (below, cyclic) = reach(*pid);
        let n = info.get_mut(pid).expect("known pid");
        n.blocks_total = below.len() as u32;
        n.in_cycle = cyclic;
        any_cycle |= cyclic;
    }
    for kids in children.values_mut() {
        kids.sort_by_key(|k| (std::cmp::Reverse(info[k].blocks_total), *k));
        kids.dedup();
    }

    // Roots: block others, wait for nobody. Busiest first.
    let mut root_pids: Vec<i32> = info
        .values()
        .filter(|n| n.blocked_by.is_empty() && children.contains_key(&n.pid))
        .map(|n| n.pid)
        .collect();
    root_pids.sort_by_key(|p| (std::cmp::Reverse(info[p].blocks_total), *p));

    let mut expanded: HashSet<i32> = HashSet::new();
    let mut roots = Vec::new();
    for r in root_pids {
        roots.push(expand(r, &info, &children, &mut expanded, 0));
    }
    // Waiters not reached from a root wait in a cycle (or behind one): start from the lowest pid.
    while let Some(p) = waiters.iter().find(|p| !expanded.contains(p)).copied() {
        let start = info
            .values()
            .filter(|n| n.in_cycle && !expanded.contains(&n.pid))
            .map(|n| n.pid)
            .min()
            .unwrap_or(p);
        roots.push(expand(start, &info, &children, &mut expanded, 0));
    }
    BlockingTree {
        roots,
        waiting: waiters.len() as u32,
        cycles: any_cycle,
        truncated,
        sampled_at: chrono::Utc::now().to_rfc3339(),
    }
}

fn expand(
    pid: i32,
    info: &BTreeMap<i32, BlockingNode>,
    children: &BTreeMap<i32, Vec<i32>>,
    expanded: &mut HashSet<i32>,
    depth: usize,
) -> BlockingNode {
    let mut node = info[&pid].clone();
    if !expanded.insert(pid) {
        node.shown_elsewhere = true;
        return node;
    }
    if depth >= MAX_DEPTH {
        node.note = Some(format!(
            "The chain is deeper than {MAX_DEPTH} sessions; {} more wait below.",
            node.blocks_total
        ));
        // Those below are accounted for here, not shown again as roots of their own.
        let mut stack: Vec<i32> = children.get(&pid).cloned().unwrap_or_default();
        while let Some(p) = stack.pop() {
            if expanded.insert(p) {
                stack.extend(children.get(&p).into_iter().flatten().copied());
            }
        }
        return node;
    }
    for c in children.get(&pid).into_iter().flatten() {
        // A child expanded before (also the one closing a cycle) comes back as a marked leaf.
        node.children
            .push(expand(*c, info, children, expanded, depth + 1));
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(pid: i32, blocked_by: &[i32]) -> BlockingNode {
        BlockingNode {
            pid,
            blocked_by: blocked_by.to_vec(),
            ..Default::default()
        }
    }

    /// The tree as text: "pid(children...)", with * for a repeated node and ! for a cycle member.
    fn shape(t: &BlockingTree) -> String {
        fn one(n: &BlockingNode) -> String {
            let mut s = n.pid.to_string();
            if n.shown_elsewhere {
                s.push('*');
            }
            if n.in_cycle {
                s.push('!');
            }
            if !n.children.is_empty() {
                s.push('(');
                s.push_str(&n.children.iter().map(one).collect::<Vec<_>>().join(" "));
                s.push(')');
            }
            s
        }
        t.roots.iter().map(one).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn chain_and_fan_out() {
        // 10 blocks 20 and 30; 20 blocks 40; 50 blocks 60.
        let t = build(
            vec![
                n(10, &[]),
                n(20, &[10]),
                n(30, &[10]),
                n(40, &[20]),
                n(50, &[]),
                n(60, &[50]),
            ],
            false,
        );
        assert_eq!(shape(&t), "10(20(40) 30) 50(60)");
        assert_eq!(t.waiting, 4);
        assert!(!t.cycles);
        assert_eq!(t.roots[0].blocks_total, 3);
    }

    #[test]
    fn a_waiter_with_two_blockers_is_expanded_once() {
        // 3 waits for both 1 and 2; 4 waits for 3.
        let t = build(vec![n(1, &[]), n(2, &[]), n(3, &[1, 2]), n(4, &[3])], false);
        assert_eq!(shape(&t), "1(3(4)) 2(3*)");
        assert_eq!(t.roots[1].children[0].blocked_by, vec![1, 2]);
    }

    #[test]
    fn deadlock_cycles_terminate_and_are_marked() {
        let t = build(vec![n(7, &[8]), n(8, &[7])], false);
        assert!(t.cycles);
        assert_eq!(shape(&t), "7!(8!(7*!))");
        // A cycle with a waiter hanging below it, and an unrelated root.
        let t = build(
            vec![
                n(1, &[3]),
                n(2, &[1]),
                n(3, &[2]),
                n(4, &[2]),
                n(9, &[]),
                n(10, &[9]),
            ],
            false,
        );
        assert_eq!(shape(&t), "9(10) 1!(2!(3!(1*!) 4))");
        assert_eq!(t.waiting, 5);
    }

    #[test]
    fn self_loops_and_duplicates_are_ignored() {
        let t = build(vec![n(1, &[]), n(2, &[1, 1, 2])], false);
        assert_eq!(shape(&t), "1(2)");
        assert_eq!(t.roots[0].children[0].blocked_by, vec![1]);
    }

    #[test]
    fn unknown_blockers_get_a_placeholder() {
        // pid 0: a prepared transaction; 77: ended between the two reads.
        let t = build(vec![n(5, &[0]), n(6, &[77])], false);
        assert_eq!(shape(&t), "0(5) 77(6)");
        assert!(t.roots[0].note.as_deref().unwrap().contains("prepared"));
        assert!(t.roots[1].note.is_some());
    }

    #[test]
    fn long_chains_stop_at_the_depth_limit() {
        let mut v = vec![n(1, &[])];
        for p in 2..=200 {
            v.push(n(p, &[p - 1]));
        }
        let t = build(v, false);
        let mut depth = 0;
        let mut cur = &t.roots[0];
        while let Some(c) = cur.children.first() {
            cur = c;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
        assert!(cur.note.as_deref().unwrap().contains("deeper"));
        assert_eq!(t.roots.len(), 1, "the rest of the chain is not re-rooted");
    }

    #[test]
    fn nothing_waiting_gives_an_empty_tree() {
        let t = build(vec![], false);
        assert!(t.roots.is_empty());
        assert_eq!(t.waiting, 0);
    }
}
