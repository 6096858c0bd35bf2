package duckq

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/forge-mlops/forge"
)

// Format names a kind of input file.
type Format string

const (
	FormatCSV     Format = "csv"
	FormatTSV     Format = "tsv"
	FormatJSONL   Format = "jsonl"
	FormatParquet Format = "parquet"
)

// Source is what a dataset version is made from: one file, several files, or
// a folder whose files are all of one format. Files are read in path order
// and their columns united by name.
type Source struct {
	Path      string   // a file or a folder
	Paths     []string // more files or folders, read after Path
	Format    Format   // empty: from the file extension
	Delimiter string   // CSV/TSV only; default "," or a tab
	Header    *bool    // CSV/TSV only; nil: detected
	// Schema overrides the detected type of the columns it names, in
	// DuckDB's type syntax (BIGINT, DOUBLE, VARCHAR, DATE, DECIMAL(10,2) ...).
	// A value that does not convert is an error, not a NULL.
	Schema []Column
}

// Column is a column's name and its DuckDB type.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Table describes a Parquet file: its row count and its columns.
type Table struct {
	Rows    int64    `json:"rows"`
	Columns []Column `json:"columns"`
}

// ConvertOptions tune the Parquet file written. The zero value is what Forge
// stores; changing it changes the bytes, and so the digest, of a dataset.
type ConvertOptions struct {
	RowGroupSize int // rows per row group; default 122880 (DuckDB's)
}

const defaultRowGroupSize = 122880

// Convert reads src and writes it to dstParquet as one Parquet file. The same
// input and options give the same bytes, so a dataset's content digest does
// not depend on when, or on how many cores, it was converted. The file is
// written beside dstParquet and renamed into place, so dstParquet is either
// complete or absent.
func (e *Engine) Convert(ctx context.Context, src Source, dstParquet string, opts ConvertOptions) (Table, error) {
	files, format, err := resolveSource(src)
	if err != nil {
		return Table{}, err
	}
	for _, c := range src.Schema {
		if c.Name == "" || !typeName.MatchString(c.Type) {
			return Table{}, forge.Errorf(forge.Invalid, "schema override for column %q: bad type %q", c.Name, c.Type)
		}
	}
	var selectSQL string
	switch format {
	case FormatCSV, FormatTSV:
		selectSQL, err = csvSelect(files, format, src)
	case FormatJSONL:
		selectSQL = withOverrides("read_json("+stringList(files)+
			", format = 'newline_delimited', union_by_name = true, ignore_errors = false)", src.Schema)
	case FormatParquet:
		selectSQL = withOverrides("read_parquet("+stringList(files)+", union_by_name = true)", src.Schema)
	}
	if err != nil {
		return Table{}, err
	}

	db, err := e.open(ctx, nil)
	if err != nil {
		return Table{}, err
	}
	defer db.Close()
	t, err := writeParquet(ctx, db, selectSQL, dstParquet, opts)
	if err != nil && (format == FormatCSV || format == FormatTSV) {
		err = explainCSVError(ctx, db, err, files, format, src)
	}
	return t, tidyMessage(err, files)
}

var errorPrefix = regexp.MustCompile(`^[A-Z][A-Za-z ]* Error: `)

// tidyMessage drops DuckDB's "Xxx Error: " prefix from an Invalid error's
// message and shows files by base name: the client named the files, it
// need not see where the server keeps them.
func tidyMessage(err error, files []string) error {
	fe, ok := err.(*forge.Error)
	if !ok || fe.Kind != forge.Invalid {
		return err
	}
	msg := errorPrefix.ReplaceAllString(fe.Msg, "")
	for _, f := range files {
		msg = strings.ReplaceAll(msg, f, filepath.Base(f))
	}
	return &forge.Error{Kind: fe.Kind, Msg: msg, Err: fe.Err}
}

// ParquetCompression is how Forge compresses the Parquet files it writes.
// zstd at its fast level -1 costs about what DuckDB's default, snappy,
// costs to write, and gives files about a third smaller, which are then
// hashed, uploaded, stored and read back for every query. Changing it
// changes the bytes, and so the digests, of newly converted datasets.
const ParquetCompression = "COMPRESSION zstd, COMPRESSION_LEVEL -1"

// writeParquet runs COPY (selectSQL) TO a temporary file and renames it to
// dst, then describes the result.
func writeParquet(ctx context.Context, db *sql.DB, selectSQL, dst string, opts ConvertOptions) (Table, error) {
	rowGroup := opts.RowGroupSize
	if rowGroup <= 0 {
		rowGroup = defaultRowGroupSize
	}
	tmp := dst + ".tmp"
	defer os.Remove(tmp)
	// preserve_insertion_order (DuckDB's default) keeps rows in file order
	// whatever the thread count; a fixed row group size keeps the row group
	// boundaries, and so the bytes, independent of how work was split.
	copySQL := fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, %s, ROW_GROUP_SIZE %d)",
		selectSQL, quoteString(tmp), ParquetCompression, rowGroup)
	res, err := db.ExecContext(ctx, copySQL)
	if err != nil {
		return Table{}, mapError(ctx, err, "convert")
	}
	// COPY reports the rows it wrote, so only the footer is read back.
	n, err := res.RowsAffected()
	if err != nil {
		return Table{}, fmt.Errorf("convert: %w", err)
	}
	cols, err := columnsOf(ctx, db, "SELECT * FROM read_parquet("+quoteString(tmp)+")")
	if err != nil {
		return Table{}, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return Table{}, fmt.Errorf("convert: %w", err)
	}
	return Table{Rows: n, Columns: cols}, nil
}

func columnsOf(ctx context.Context, db *sql.DB, query string) ([]Column, error) {
	rows, err := db.QueryContext(ctx, "DESCRIBE "+query)
	if err != nil {
		return nil, mapError(ctx, err, "describe")
	}
	defer rows.Close()
	var cols []Column
	for rows.Next() {
		var c Column
		var null, key, def, extra sql.NullString
		if err := rows.Scan(&c.Name, &c.Type, &null, &key, &def, &extra); err != nil {
			return nil, fmt.Errorf("describe: %w", err)
		}
		cols = append(cols, c)
	}
	return cols, mapError(ctx, rows.Err(), "describe")
}

// resolveSource lists the files of src in read order and settles their
// common format, rejecting files that are empty or not what they claim.
func resolveSource(src Source) ([]string, Format, error) {
	var roots []string
	if src.Path != "" {
		roots = append(roots, src.Path)
	}
	roots = append(roots, src.Paths...)
	if len(roots) == 0 {
		return nil, "", forge.Errorf(forge.Invalid, "no input files")
	}
	var files []string
	for _, root := range roots {
		fi, err := os.Stat(root)
		if err != nil {
			return nil, "", forge.WrapError(forge.Invalid, err, "input %s: cannot read", filepath.Base(root))
		}
		if !fi.IsDir() {
			files = append(files, root)
			continue
		}
		entries, err := os.ReadDir(root)
		if err != nil {
			return nil, "", fmt.Errorf("list %s: %w", root, err)
		}
		var inDir []string
		for _, ent := range entries {
			if ent.Type().IsRegular() && !strings.HasPrefix(ent.Name(), ".") {
				inDir = append(inDir, filepath.Join(root, ent.Name()))
			}
		}
		if len(inDir) == 0 {
			return nil, "", forge.Errorf(forge.Invalid, "folder %s has no files", filepath.Base(root))
		}
		slices.Sort(inDir)
		files = append(files, inDir...)
	}

	format := src.Format
	for _, f := range files {
		ext := formatOf(f)
		if src.Format != "" {
			continue
		}
		if ext == "" {
			return nil, "", forge.Errorf(forge.Invalid,
				"%s: unknown format; name it .csv, .tsv, .jsonl or .parquet, or give the format", filepath.Base(f))
		}
		if format != "" && ext != format {
			return nil, "", forge.Errorf(forge.Invalid,
				"%s is %s but other files are %s; a dataset is made of one format", filepath.Base(f), ext, format)
		}
		format = ext
	}
	switch format {
	case FormatCSV, FormatTSV, FormatJSONL, FormatParquet:
	default:
		return nil, "", forge.Errorf(forge.Invalid, "unknown format %q", format)
	}
	for _, f := range files {
		if err := checkContent(f, format); err != nil {
			return nil, "", err
		}
	}
	return files, format, nil
}

func formatOf(path string) Format {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return FormatCSV
	case ".tsv", ".tab":
		return FormatTSV
	case ".jsonl", ".ndjson":
		return FormatJSONL
	case ".parquet", ".pq":
		return FormatParquet
	}
	return ""
}

// magics are file signatures of formats users upload by mistake; DuckDB's own
// errors on them ("could not detect the dialect") would not say what is wrong.
var magics = []struct {
	prefix string
	name   string
}{
	{"PAR1", "a Parquet file"},
	{"\x89PNG\r\n\x1a\n", "a PNG image"},
	{"\xff\xd8\xff", "a JPEG image"},
	{"GIF8", "a GIF image"},
	{"%PDF-", "a PDF document"},
	{"PK\x03\x04", "a zip archive (xlsx files are zip archives too)"},
	{"\x1f\x8b", "gzip-compressed"},
	{"\x28\xb5\x2f\xfd", "zstd-compressed"},
	{"SQLite format 3\x00", "an SQLite database"},
}

// checkContent rejects a file that is empty or whose first bytes contradict
// format.
func checkContent(path string, format Format) error {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		return forge.WrapError(forge.Invalid, err, "%s: cannot read", name)
	}
	defer f.Close()
	head := make([]byte, 8192)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fmt.Errorf("read %s: %w", path, err)
	}
	head = head[:n]
	if len(bytes.TrimSpace(head)) == 0 {
		return forge.Errorf(forge.Invalid, "%s is empty", name)
	}
	what := ""
	for _, m := range magics {
		if bytes.HasPrefix(head, []byte(m.prefix)) {
			what = m.name
			break
		}
	}
	if format == FormatParquet {
		if what != "a Parquet file" {
			switch {
			case what != "":
			case head[0] == '{' || head[0] == '[':
				what = "JSON"
			case utf8.Valid(head):
				what = "text"
			default:
				what = "some other binary format"
			}
			return forge.Errorf(forge.Invalid, "%s is not a Parquet file (it looks like %s)", name, what)
		}
		return nil
	}
	if what == "" && bytes.IndexByte(head, 0) >= 0 {
		what = "binary data"
	}
	if what != "" {
		return forge.Errorf(forge.Invalid, "%s is not a %s file: it is %s", name, strings.ToUpper(string(format)), what)
	}
	if format == FormatJSONL {
		if c := bytes.TrimLeft(head, " \t\r\n\ufeff"); len(c) == 0 || c[0] != '{' {
			return forge.Errorf(forge.Invalid, "%s is not JSON lines: line 1 does not start with '{'", name)
		}
	}
	return nil
}

func csvDelimiter(format Format, src Source) (string, error) {
	d := src.Delimiter
	if d == "" {
		d = ","
		if format == FormatTSV {
			d = "\t"
		}
	}
	if len(d) != 1 || d == `"` || d == "\n" || d == "\r" {
		return "", forge.Errorf(forge.Invalid, "delimiter %q: must be one character other than a quote or newline", d)
	}
	return d, nil
}

// csvSelect builds a strict read_csv: the dialect is fixed rather than
// sniffed (a sniffer that may drop leading rows or pick another delimiter
// would hide ragged rows), only types and, when not given, the header are
// detected, and every malformed row is an error.
func csvSelect(files []string, format Format, src Source) (string, error) {
	delim, err := csvDelimiter(format, src)
	if err != nil {
		return "", err
	}
	if src.Delimiter == "" {
		if err := otherDelimiter(files, delim); err != nil {
			return "", err
		}
	}
	args := []string{
		stringList(files),
		"delim = " + quoteString(delim),
		`quote = '"'`, `escape = '"'`, "comment = ''", "skip = 0",
		"strict_mode = true", "null_padding = false", "ignore_errors = false",
		"union_by_name = true",
	}
	if src.Header != nil {
		args = append(args, "header = "+strconv.FormatBool(*src.Header))
	}
	if len(src.Schema) > 0 {
		var types []string
		for _, c := range src.Schema {
			types = append(types, quoteString(c.Name)+": "+quoteString(c.Type))
		}
		args = append(args, "types = {"+strings.Join(types, ", ")+"}")
	}
	return "SELECT * FROM read_csv(" + strings.Join(args, ", ") + ")", nil
}

// withOverrides casts the overridden columns of a reader that has no types
// option of its own.
func withOverrides(reader string, schema []Column) string {
	if len(schema) == 0 {
		return "SELECT * FROM " + reader
	}
	var repl []string
	for _, c := range schema {
		repl = append(repl, fmt.Sprintf("CAST(%s AS %s) AS %s", quoteIdent(c.Name), c.Type, quoteIdent(c.Name)))
	}
	return "SELECT * REPLACE (" + strings.Join(repl, ", ") + ") FROM " + reader
}

func stringList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = quoteString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

var (
	csvLineRe  = regexp.MustCompile(`CSV Error on Line: (\d+)`)
	csvFileRe  = regexp.MustCompile(`(?m)^\s*file = (.+)$`)
	csvSniffRe = regexp.MustCompile(`Error when sniffing file "(.*?)"`)
)

// explainCSVError rewrites DuckDB's multi-line CSV error as
// "FILE: line N: REASON". When the sniffer gave up, which happens when a
// malformed row is within its sample and says nothing about where, the file
// is read again without sniffing to find the line.
func explainCSVError(ctx context.Context, db *sql.DB, err error, files []string, format Format, src Source) error {
	if !forge.IsKind(err, forge.Invalid) {
		return err
	}
	var cause error = err
	if fe, ok := err.(*forge.Error); ok && fe.Err != nil {
		cause = fe.Err
	}
	msg := cause.Error()
	if m := csvSniffRe.FindStringSubmatch(msg); m != nil {
		// DuckDB names the file only sometimes (not when given a list).
		suspects := files
		if m[1] != "" {
			suspects = []string{m[1]}
		}
		for _, f := range suspects {
			if derr := diagnoseCSV(ctx, db, f, format, src); derr != nil {
				return derr
			}
		}
		delim, _ := csvDelimiter(format, src)
		return forge.WrapError(forge.Invalid, cause, "%s: not a valid %s file (no consistent columns with delimiter %q)",
			filepath.Base(suspects[0]), strings.ToUpper(string(format)), delim)
	}
	m := csvLineRe.FindStringSubmatch(msg)
	if m == nil {
		return err
	}
	file := files[0]
	if fm := csvFileRe.FindStringSubmatch(msg); fm != nil {
		file = strings.TrimSpace(fm[1])
	}
	return forge.WrapError(forge.Invalid, cause, "%s: line %s: %s", filepath.Base(file), m[1], csvReason(msg))
}

// csvReason picks the sentence saying what is wrong out of a DuckDB CSV
// error: the first non-empty line after "Original Line: ...".
func csvReason(msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "Original Line:") {
			continue
		}
		for _, r := range lines[i+1:] {
			if r = strings.TrimSpace(r); r != "" {
				return r
			}
		}
	}
	return firstLine(msg)
}

// diagnoseCSV reads file with a fixed all-text schema taken from its first
// record, so DuckDB reports the first malformed row with its line number.
// It returns nil when it finds nothing more precise to say.
func diagnoseCSV(ctx context.Context, db *sql.DB, file string, format Format, src Source) error {
	delim, _ := csvDelimiter(format, src)
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = rune(delim[0])
	r.LazyQuotes = true
	first, err := r.Read()
	if err != nil || len(first) == 0 {
		return nil
	}
	cols := make([]string, len(first))
	for i := range first {
		cols[i] = fmt.Sprintf("'c%d': 'VARCHAR'", i)
	}
	header := src.Header == nil || *src.Header
	q := fmt.Sprintf("SELECT count(*) FROM read_csv(%s, delim = %s, quote = '\"', escape = '\"', comment = '', skip = 0, "+
		"header = %t, auto_detect = false, columns = {%s}, strict_mode = true, null_padding = false, ignore_errors = false)",
		quoteString(file), quoteString(delim), header, strings.Join(cols, ", "))
	var n int64
	qerr := db.QueryRowContext(ctx, q).Scan(&n)
	if qerr == nil {
		return nil
	}
	msg := qerr.Error()
	if m := csvLineRe.FindStringSubmatch(msg); m != nil {
		return forge.WrapError(forge.Invalid, qerr, "%s: line %s: %s", filepath.Base(file), m[1], csvReason(msg))
	}
	return nil
}

// otherDelimiter refuses, with a hint, a file whose first line has none of
// the default delimiter but another common one: a ';'-separated export
// would otherwise import as a single column without a word.
func otherDelimiter(files []string, delim string) error {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil // read_csv reports it
		}
		line, _ := bufio.NewReaderSize(io.LimitReader(f, 64<<10), 64<<10).ReadString('\n')
		f.Close()
		if strings.Contains(line, delim) {
			continue
		}
		for _, d := range []string{";", "\t", "|", ","} {
			if d != delim && strings.Contains(line, d) {
				return forge.Errorf(forge.Invalid, "%s: the first line has no %q but has %q: if %q separates the fields, say so (forge data --delimiter %q)",
					filepath.Base(name), delim, d, d, d)
			}
		}
	}
	return nil
}
