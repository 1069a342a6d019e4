# The column alone: a catalog change, committed before any row is filled.
class AddStatusColumnToAccounts < ActiveRecord::Migration[6.1]
  def change
    add_column :accounts, :status, :string
  end
end
