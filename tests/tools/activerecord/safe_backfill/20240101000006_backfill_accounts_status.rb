# Fills the column after its migration committed, outside a DDL transaction, in batches
# that each commit: no transaction holds the table's lock or every row's.
class BackfillAccountsStatus < ActiveRecord::Migration[6.1]
  disable_ddl_transaction!

  class Account < ActiveRecord::Base
    self.table_name = "accounts"
  end

  def up
    Account.reset_column_information
    Account.where(status: nil).in_batches(of: 1000) { |batch| batch.update_all(status: "active") }
  end

  def down; end
end
