# The usual generated rename: running code that still uses accounts breaks at COMMIT.
class RenameAccountsToMembers < ActiveRecord::Migration[6.1]
  def change
    rename_table :accounts, :members
  end
end
