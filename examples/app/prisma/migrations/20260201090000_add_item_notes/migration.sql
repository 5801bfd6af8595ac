-- AlterTable
ALTER TABLE "items" ADD COLUMN     "notes" TEXT;
