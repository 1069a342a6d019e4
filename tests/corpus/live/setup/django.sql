-- Tables django.sql alters without creating them.
CREATE TABLE shop_customer (id bigint PRIMARY KEY);
CREATE TABLE shop_store (id bigint PRIMARY KEY);
CREATE TABLE shop_order (id bigint PRIMARY KEY, store_id bigint, number integer, total numeric(10, 2));
