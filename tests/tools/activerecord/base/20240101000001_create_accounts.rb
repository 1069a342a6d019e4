class CreateAccounts < ActiveRecord::Migration[6.1]
  def change
    create_table :accounts do |t|
      t.string :name, null: false
    end
    # A table in use: later migrations meet rows (an empty table is indexed at once).
    execute "INSERT INTO accounts (name) VALUES ('first')"
  end
end
