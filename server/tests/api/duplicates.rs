//! The duplicate check against an independent, brute-force computation of the flags.

use std::collections::{HashMap, HashSet};

use app::duplicates::{ssr, DuplicateStats};
use uuid::Uuid;

use crate::helpers::TestDb;

/// A deterministic generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Staged rows (merchant, row_number, code) and production codes, with chosen duplicate rates,
/// codes that differ only in case or in spaces, and several merchants sharing codes.
fn generate(rng: &mut Rng, merchants: &[Uuid]) -> (Vec<(Uuid, i64, String)>, Vec<(Uuid, String)>) {
    let variants = |n: u64| match n % 4 {
        0 => format!("CODE-{n}"),
        1 => format!("code-{n}"),
        2 => format!(" CODE-{n}"),
        _ => format!("CODE-{n} "),
    };
    let mut staged = Vec::new();
    let mut production = HashSet::new();
    for &merchant in merchants {
        for _ in 0..300 {
            production.insert((merchant, variants(rng.below(2_000))));
        }
        for row in 1..=1_500 {
            staged.push((merchant, row, variants(rng.below(2_000))));
        }
    }
    (staged, production.into_iter().collect())
}

/// The flags by definition: the 2nd, 3rd, … occurrence per (merchant, code) in row order, and
/// whether (code, merchant) is in production.
fn brute_force(staged: &[(Uuid, i64, String)], production: &[(Uuid, String)]) -> HashMap<(Uuid, i64), (bool, bool)> {
    let production: HashSet<&(Uuid, String)> = production.iter().collect();
    let mut sorted: Vec<&(Uuid, i64, String)> = staged.iter().collect();
    sorted.sort_by_key(|(merchant, row, _)| (*merchant, *row));
    let mut seen = HashSet::new();
    sorted
        .into_iter()
        .map(|(merchant, row, code)| {
            let internal = !seen.insert((*merchant, code.clone()));
            let existing = production.contains(&(*merchant, code.clone()));
            ((*merchant, *row), (internal, existing))
        })
        .collect()
}

async fn flags(pool: &sqlx::PgPool) -> HashMap<(Uuid, i64), (bool, bool)> {
    sqlx::query_as::<_, (Uuid, i64, bool, bool)>("SELECT merchant_id, row_number, internal_dup, existing_dup FROM codes_check_temp")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(m, r, i, e)| ((m, r), (i, e)))
        .collect()
}

async fn insert(pool: &sqlx::PgPool, staged: &[(Uuid, i64, String)], production: &[(Uuid, String)]) {
    let (merchants, rows, codes): (Vec<Uuid>, Vec<i64>, Vec<String>) =
        staged.iter().cloned().fold((vec![], vec![], vec![]), |(mut a, mut b, mut c), (m, r, code)| {
            a.push(m);
            b.push(r);
            c.push(code);
            (a, b, c)
        });
    sqlx::query("INSERT INTO codes_check_temp (merchant_id, row_number, code) SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[])")
        .bind(merchants)
        .bind(rows)
        .bind(codes)
        .execute(pool)
        .await
        .unwrap();
    let (merchants, codes): (Vec<Uuid>, Vec<String>) = production.iter().cloned().unzip();
    sqlx::query("INSERT INTO codes (merchant_id, code) SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT DO NOTHING")
        .bind(merchants)
        .bind(codes)
        .execute(pool)
        .await
        .unwrap();
}

async fn check_all(pool: &sqlx::PgPool, merchants: &[Uuid]) {
    let mut conn = pool.acquire().await.unwrap();
    for &merchant in merchants {
        ssr::mark_duplicates(&mut conn, merchant).await.unwrap();
    }
}

#[tokio::test]
async fn every_rows_flags_equal_a_brute_force_computation_and_a_rerun_changes_nothing() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchants: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let (staged, production) = generate(&mut Rng(42), &merchants);
    insert(&pool, &staged, &production).await;

    check_all(&pool, &merchants).await;

    let expected = brute_force(&staged, &production);
    assert_eq!(flags(&pool).await, expected);
    let both = expected.values().filter(|(i, e)| *i && *e).count();
    assert!(both > 0 && expected.values().any(|f| *f == (false, false)), "every status is present");
    let mut conn = pool.acquire().await.unwrap();
    let stats = ssr::stats(&mut conn, merchants[0]).await.unwrap();
    let mine: Vec<&(bool, bool)> = expected.iter().filter(|((m, _), _)| *m == merchants[0]).map(|(_, f)| f).collect();
    assert_eq!(
        stats,
        DuplicateStats {
            total_rows: mine.len() as i64,
            internal_duplicates: mine.iter().filter(|f| f.0).count() as i64,
            database_duplicates: mine.iter().filter(|f| f.1).count() as i64,
            both: mine.iter().filter(|f| f.0 && f.1).count() as i64,
            clean_count: mine.iter().filter(|f| !f.0 && !f.1).count() as i64,
        }
    );
    assert_eq!(ssr::mark_duplicates(&mut conn, merchants[0]).await.unwrap(), 0, "a rerun writes nothing");
    assert_eq!(flags(&pool).await, expected);
    drop(conn);
    pool.close().await;
}

#[tokio::test]
async fn a_rerun_after_more_rows_and_production_changes_gives_the_right_flags() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchants: Vec<Uuid> = (0..2).map(|_| Uuid::new_v4()).collect();
    let mut rng = Rng(7);
    let (mut staged, mut production) = generate(&mut rng, &merchants);
    insert(&pool, &staged, &production).await;
    check_all(&pool, &merchants).await;

    // More rows staged, codes added to and removed from production.
    let more: Vec<(Uuid, i64, String)> = (1..=200).map(|i| (merchants[0], 1_500 + i, format!("CODE-{}", rng.below(2_000)))).collect();
    let added: Vec<(Uuid, String)> = (0..100).map(|_| (merchants[1], format!("CODE-{}", rng.below(2_000)))).collect();
    insert(&pool, &more, &added).await;
    let removed = production.split_off(production.len() - 50);
    for (merchant, code) in &removed {
        sqlx::query("DELETE FROM codes WHERE merchant_id = $1 AND code = $2").bind(merchant).bind(code).execute(&pool).await.unwrap();
    }
    staged.extend(more);
    let production: Vec<(Uuid, String)> = sqlx::query_as("SELECT merchant_id, code FROM codes").fetch_all(&pool).await.unwrap();

    check_all(&pool, &merchants).await;

    assert_eq!(flags(&pool).await, brute_force(&staged, &production));
    pool.close().await;
}
