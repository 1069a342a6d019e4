-- `prisma migrate dev` migration.sql files, concatenated. Prisma applies each file as
-- one script (one transaction); the files have no BEGIN.

-- CreateEnum
-- expect: ok
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');

-- CreateTable
-- expect: ok
CREATE TABLE "User" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "role" "Role" NOT NULL DEFAULT 'USER',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
-- expect: ok
CREATE TABLE "Post" (
    "id" SERIAL NOT NULL,
    "title" VARCHAR(255) NOT NULL,
    "content" TEXT,
    "published" BOOLEAN NOT NULL DEFAULT false,
    "authorId" INTEGER NOT NULL,

    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
-- expect: ok
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");

-- AddForeignKey
-- expect: ok
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Migration 20240301120000_profile (a table that exists already)

-- AlterTable
-- expect: ok
ALTER TABLE "Profile" ADD COLUMN "bio" TEXT;

-- AlterTable
-- expect: add_column_required
ALTER TABLE "Profile" ADD COLUMN "handle" TEXT NOT NULL;

-- AlterTable
-- expect: ok
ALTER TABLE "Profile" ADD COLUMN "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

-- AlterTable
-- expect: add_column_volatile_default
ALTER TABLE "Profile" ADD COLUMN "token" TEXT NOT NULL DEFAULT md5(random()::text);

-- AlterTable
-- expect: json_column
ALTER TABLE "Profile" ADD COLUMN "prefs" JSON;

-- AlterTable
-- expect: ok
ALTER TABLE "Profile" ADD COLUMN "settings" JSONB NOT NULL DEFAULT '{}';

-- AlterTable
-- expect: add_column_rewrites_table
ALTER TABLE "Profile" ADD COLUMN "seq" SERIAL NOT NULL;

-- AlterTable
-- expect: drop_column
ALTER TABLE "Profile" DROP COLUMN "legacyBio";

-- AlterTable
-- expect: set_not_null
ALTER TABLE "Profile" ALTER COLUMN "bio" SET NOT NULL;

-- AlterTable
-- expect: ok
ALTER TABLE "Profile" ALTER COLUMN "bio" DROP NOT NULL;

-- AlterTable
-- expect: ok
ALTER TABLE "Profile" ALTER COLUMN "handle" SET DEFAULT 'anon';

-- CreateIndex
-- expect: create_index_non_concurrently
CREATE INDEX "Profile_handle_idx" ON "Profile"("handle");

-- CreateIndex
-- expect: create_index_non_concurrently
CREATE UNIQUE INDEX "Profile_userId_key" ON "Profile"("userId");

-- AddForeignKey
-- expect: add_foreign_key_validated
ALTER TABLE "Profile" ADD CONSTRAINT "Profile_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- DropForeignKey
-- expect: ok
ALTER TABLE "Profile" DROP CONSTRAINT "Profile_ownerId_fkey";

-- DropIndex
-- The script's transaction built it: no other session sees it yet.
-- expect: ok
DROP INDEX "Profile_handle_idx";

-- RenameIndex
-- expect: ok
ALTER INDEX "Profile_userId_key" RENAME TO "Profile_user_id_key";

-- DropTable
-- expect: drop_table
DROP TABLE "Session";

-- AlterEnum
-- expect: ok
ALTER TYPE "Role" ADD VALUE 'MODERATOR';

-- Prisma's migrate lock, taken on the session before the migration runs.
-- expect: ok
SELECT pg_advisory_lock(72707369);

-- expect: ok
SELECT pg_advisory_unlock(72707369);
