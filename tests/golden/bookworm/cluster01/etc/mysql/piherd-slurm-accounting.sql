-- Managed by piherd for cluster picluster; local edits are overwritten.
-- Run by MariaDB at every start: slurmdbd's database user, no password.
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
