# CREATE INDEX CONCURRENTLY cannot run inside a transaction block, so this migration
# runs without ActiveRecord's DDL transaction.
class IndexAccountsOnEmail < ActiveRecord::Migration[6.1]
  disable_ddl_transaction!

  def change
    add_index :accounts, :email, algorithm: :concurrently
  end
end
