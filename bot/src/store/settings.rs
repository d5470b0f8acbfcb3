//! Small per-scope settings (trigger words, access lists, personas, guild models).

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, sql};

impl Store {
    pub async fn get_setting(&self, scope: &str, key: &str) -> Result<Option<String>, StoreError> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.with(move |c| {
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
}
