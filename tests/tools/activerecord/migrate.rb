# Run pending ActiveRecord migrations the way `rails db:migrate` does, without a Rails
# app: ActiveRecord::MigrationContext over the migration directories given as
# arguments, against DATABASE_URL. A failing migration prints the error as Rails shows
# it (the server's message, DETAIL and HINT included), without the backtrace, and
# exits 1.
require "active_record"

ActiveRecord::Base.establish_connection(ENV.fetch("DATABASE_URL"))
ActiveRecord::Migration.verbose = true

begin
  ActiveRecord::MigrationContext.new(ARGV, ActiveRecord::SchemaMigration).migrate
rescue StandardError => e
  warn "#{e.class}: #{e.message}"
  exit 1
end
