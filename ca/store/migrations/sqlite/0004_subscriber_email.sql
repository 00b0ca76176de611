-- Schema version 4: a subscriber's e-mail address, which its certificates carry as their
-- subjectAltName (without one they name the subscriber by a URI).
ALTER TABLE "subscribers" ADD COLUMN "email" TEXT;
