-- Indexes that carry every column a page reads, so that an uncached page
-- reads one range of one index instead of a row per item. The rows of a
-- large catalog are spread over many pages (the copies by their random
-- UUIDs), and each row read can be a page read from disk. Each new index
-- begins with the columns of the one it replaces, which it also serves
-- (the foreign keys among them), so the old one goes.
--
--   book list:   (title, id) + author_id: the page's books from the index
--                alone; only their authors are joined.
--   author page: (author_id) + title, id: the author's books, in order.
--   book page:   (book_id) + due_back, id, status, imprint: the copies, in
--                the order the page lists them.

-- +goose Up
CREATE INDEX book_title_author_idx ON book (title, id, author_id);
DROP INDEX book_title_idx ON book;
CREATE INDEX book_author_title_idx ON book (author_id, title, id);
DROP INDEX book_author_idx ON book;
CREATE INDEX book_instance_copies_idx ON book_instance (book_id, due_back, id, status, imprint);
DROP INDEX book_instance_book_idx ON book_instance;

-- +goose Down
CREATE INDEX book_instance_book_idx ON book_instance (book_id);
DROP INDEX book_instance_copies_idx ON book_instance;
CREATE INDEX book_author_idx ON book (author_id);
DROP INDEX book_author_title_idx ON book;
CREATE INDEX book_title_idx ON book (title, id);
DROP INDEX book_title_author_idx ON book;
