-- Expand/contract: the old name stays as a view over the renamed table.
ALTER TABLE accounts RENAME TO members;
CREATE VIEW accounts AS SELECT * FROM members;
