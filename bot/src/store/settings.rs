//! Small per-scope settings (trigger words, access lists, personas, guild models).

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError, sql};

impl Store {
    pub async fn get_setting(&self, scope: &str, key: &str) -> Result<Option<String>, StoreError> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.quick(move |c| {
            c.query_row(
                "SELECT value FROM settings WHERE scope = ?1 AND key = ?2",
                params![scope, key],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("reading a setting"))
        })
        .await
    }

    pub async fn set_setting(&self, scope: &str, key: &str, value: &str) -> Result<(), StoreError> {
        let (scope, key, value) = (scope.to_string(), key.to_string(), value.to_string());
        self.with(move |c| {
            c.execute(
                "INSERT INTO settings (scope, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(scope, key) DO UPDATE SET value = excluded.value",
                params![scope, key, value],
            )
            .map_err(sql("saving a setting"))?;
            Ok(())
        })
        .await
    }

    /// Removes a setting; true if it existed.
    pub async fn delete_setting(&self, scope: &str, key: &str) -> Result<bool, StoreError> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM settings WHERE scope = ?1 AND key = ?2",
                    params![scope, key],
                )
                .map_err(sql("removing a setting"))?;
            Ok(n > 0)
        })
        .await
    }

    /// Every (key, value) of a scope, ordered by key.
    pub async fn list_settings(&self, scope: &str) -> Result<Vec<(String, String)>, StoreError> {
        let scope = scope.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT key, value FROM settings WHERE scope = ?1 ORDER BY key")
                .map_err(sql("listing settings"))?;
            let rows = stmt
                .query_map(params![scope], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql("listing settings"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(sql("listing settings"))
        })
        .await
    }

    /// Reads `keys` of `scope`, lets `f` change their values (`None` deletes) and writes them back,
    /// all in one IMMEDIATE transaction, so that concurrent read-modify-writes (two admin commands,
    /// two processes) never lose an update. Returns what `f` returns.
    pub async fn update_settings<T: Send + 'static>(
        &self,
        scope: &str,
        keys: &[&str],
        f: impl FnOnce(&mut [Option<String>]) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let scope = scope.to_string();
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql("starting a settings update"))?;
            let mut values = Vec::with_capacity(keys.len());
            for key in &keys {
                values.push(
                    tx.query_row(
                        "SELECT value FROM settings WHERE scope = ?1 AND key = ?2",
                        params![scope, key],
                        |r| r.get::<_, String>(0),
                    )
                    .optional()
                    .map_err(sql("reading a setting"))?,
                );
            }
            let out = f(&mut values);
            for (key, value) in keys.iter().zip(&values) {
                match value {
                    Some(v) => tx.execute(
                        "INSERT INTO settings (scope, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT(scope, key) DO UPDATE SET value = excluded.value",
                        params![scope, key, v],
                    ),
                    None => tx.execute(
                        "DELETE FROM settings WHERE scope = ?1 AND key = ?2",
                        params![scope, key],
                    ),
                }
                .map_err(sql("saving a setting"))?;
            }
            tx.commit().map_err(sql("saving settings"))?;
            Ok(out)
        })
        .await
    }
}
