-- Tables prisma.sql alters without creating them.
CREATE TABLE "Profile" ("id" serial PRIMARY KEY, "legacyBio" text, "userId" integer, "ownerId" integer);
CREATE TABLE "Session" ("id" text PRIMARY KEY);
