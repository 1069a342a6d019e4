# A data migration next to its schema change: add_column takes ACCESS EXCLUSIVE on
# accounts, and update_all rewrites every row in the same DDL transaction, so every query
# on accounts waits for the whole backfill.
class AddStatusToAccounts < ActiveRecord::Migration[6.1]
  class Account < ActiveRecord::Base
    self.table_name = "accounts"
  end

  def up
    add_column :accounts, :status, :string
    Account.reset_column_information
    Account.update_all(status: "active")
  end

  def down
    remove_column :accounts, :status
  end
end
