# Expand/contract rename: the old name stays as a view over the renamed table, in the
# same DDL transaction, so running code keeps reading and writing accounts.
class RenameAccountsToMembers < ActiveRecord::Migration[6.1]
  def up
    rename_table :accounts, :members
    execute "CREATE VIEW accounts AS SELECT * FROM members"
  end

  def down
    execute "DROP VIEW accounts"
    rename_table :members, :accounts
  end
end
