-- 0013 The ASP.NET data-protection key ring (sign-in cookies, antiforgery, Identity tokens), shared by every portal
-- node and job worker. Each row's xml is already encrypted with Security:EncryptionKeys. Earlier versions kept these
-- keys in the data directory's keys/ folder; the portal moves them here on first start.

CREATE TABLE "data_protection_keys" (
    "id" INTEGER NOT NULL CONSTRAINT "pk_data_protection_keys" PRIMARY KEY AUTOINCREMENT,
    "friendly_name" TEXT NULL,
    "xml" TEXT NULL
);
