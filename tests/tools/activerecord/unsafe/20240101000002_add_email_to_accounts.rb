# The usual generated migration: a column and a plain index in one DDL transaction.
# add_index takes SHARE on accounts for the whole build.
class AddEmailToAccounts < ActiveRecord::Migration[6.1]
  def change
    add_column :accounts, :email, :string
    add_index :accounts, :email
  end
end
