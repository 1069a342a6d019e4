BEGIN;
INSERT INTO hook_dml (id, v) VALUES (1000001, 'a');
UPDATE hook_dml SET v = 'b' WHERE id = 1000001;
UPDATE hook_dml SET v = v WHERE id = 5;
DELETE FROM hook_dml WHERE id = 1000001;
SELECT v FROM hook_dml WHERE id = 5;
COMMIT;
