package io.ptune.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvParser;
import com.fasterxml.jackson.dataformat.csv.CsvSchema;
import io.ptune.DatasetException;
import io.ptune.internal.JsonFiles;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.Reader;
import java.math.BigInteger;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import java.util.TreeSet;

/**
 * A labelled text-classification data set: CSV (RFC 4180 quoting, a UTF-8 byte-order mark
 * allowed, e.g. ChnSentiCorp's {@code label,review}), TSV (e.g. SST-2's {@code sentence\tlabel})
 * or JSON Lines / a JSON array of objects, chosen by the file's extension. CSV and TSV files have a
 * header row naming the fields.
 *
 * @param source the file the examples came from
 * @param examples the examples, in file order
 * @param labels the classes, in the order of their indices: the labels found, numbers in numeric
 *     order and the rest alphabetically, unless given explicitly (then every label must be one)
 */
public record ClassificationDataset(Path source, List<ClassificationExample> examples, List<String> labels) {

    /**
     * Which fields hold the text, the optional second text and the label. A null text field picks
     * the first of {@code text}, {@code sentence}, {@code review}, {@code content} the file has.
     */
    public record Fields(String text, String textB, String label) {
        public static final Fields DEFAULT = new Fields(null, null, "label");
        private static final List<String> TEXT_CANDIDATES = List.of("text", "sentence", "review", "content");

        public Fields {
            Objects.requireNonNull(label, "label field");
        }
    }

    public ClassificationDataset {
        examples = List.copyOf(examples);
        labels = List.copyOf(labels);
        if (examples.isEmpty()) {
            throw new DatasetException(source + " contains no examples");
        }
    }

    /** Reads {@code file} with the default fields and the labels it contains. */
    public static ClassificationDataset load(Path file) {
        return load(file, Fields.DEFAULT, null);
    }

    /**
     * Reads {@code file}.
     *
     * @param labels the classes in index order, or null to take them from the file
     * @throws DatasetException naming the file and line when it is missing, empty or malformed, a
     *     field is missing, or a label is not one of {@code labels}
     */
    public static ClassificationDataset load(Path file, Fields fields, List<String> labels) {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(fields, "fields");
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        List<Map<String, String>> rows = new ArrayList<>();
        List<Long> lines = new ArrayList<>();
        try {
            if (name.endsWith(".csv") || name.endsWith(".tsv")) {
                readDelimited(file, name.endsWith(".tsv") ? '\t' : ',', rows, lines);
            } else if (name.endsWith(".jsonl") || name.endsWith(".json")) {
                readJson(file, rows, lines);
            } else {
                throw new DatasetException(file + ": unknown data format; give a .csv, .tsv, .jsonl or .json file");
            }
        } catch (NoSuchFileException e) {
            throw new DatasetException("dataset file " + file + " does not exist", e);
        } catch (CharacterCodingException e) {
            throw Utf8.notUtf8(file, e);
        } catch (JsonProcessingException e) {
            throw new DatasetException(file + ": " + JsonFiles.describe(e), e);
        } catch (IOException e) {
            throw new DatasetException("cannot read dataset " + file + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            if (e instanceof DatasetException) {
                throw e;
            }
            throw new DatasetException(file + ": malformed " + name.substring(name.lastIndexOf('.') + 1) + " ("
                    + e.getMessage() + ")", e);
        }
        if (rows.isEmpty()) {
            throw new DatasetException(file + " contains no examples");
        }
        String textField = fields.text() != null ? fields.text() : Fields.TEXT_CANDIDATES.stream()
                .filter(rows.get(0)::containsKey).findFirst()
                .orElseThrow(() -> new DatasetException(file + ": no text field (" + Fields.TEXT_CANDIDATES
                        + ") in the header " + rows.get(0).keySet() + "; name it with --text-field"));
        List<ClassificationExample> examples = new ArrayList<>(rows.size());
        for (int i = 0; i < rows.size(); i++) {
            Map<String, String> row = rows.get(i);
            long line = lines.get(i);
            String text = field(file, line, row, textField, "--text-field");
            String textB = fields.textB() == null ? null : field(file, line, row, fields.textB(), "--text-b-field");
            String label = field(file, line, row, fields.label(), "--label-field").strip();
            examples.add(new ClassificationExample(text, textB, label, line));
        }
        List<String> classes = labels != null ? List.copyOf(labels) : labelsOf(examples);
        for (ClassificationExample e : examples) {
            if (!classes.contains(e.label())) {
                throw new DatasetException(file + ":" + e.line() + ": label '" + e.label() + "' is not one of "
                        + classes + "; fix the row or the label list");
            }
        }
        if (classes.size() < 2) {
            throw new DatasetException(file + ": only one class (" + classes + "); classification needs at least two");
        }
        return new ClassificationDataset(file, examples, classes);
    }

    private static String field(Path file, long line, Map<String, String> row, String field, String flag) {
        String value = row.get(field);
        if (value == null) {
            throw new DatasetException(file + ":" + line + ": missing field '" + field + "' (the row has "
                    + row.keySet() + "); name the field with " + flag);
        }
        return value;
    }

    /** Distinct labels: all numeric ones in numeric order, else alphabetical. */
    static List<String> labelsOf(List<ClassificationExample> examples) {
        TreeSet<String> distinct = new TreeSet<>();
        examples.forEach(e -> distinct.add(e.label()));
        boolean numeric = distinct.stream().allMatch(l -> l.matches("-?\\d+"));
        List<String> out = new ArrayList<>(distinct);
        if (numeric) {
            out.sort(Comparator.comparing(BigInteger::new));  // any number of digits
        }
        return out;
    }

    private static void readDelimited(Path file, char separator, List<Map<String, String>> rows, List<Long> lines)
            throws IOException {
        CsvMapper mapper = CsvMapper.builder().enable(CsvParser.Feature.SKIP_EMPTY_LINES)
                .enable(CsvParser.Feature.TRIM_SPACES).build();
        CsvSchema schema = CsvSchema.emptySchema().withHeader().withColumnSeparator(separator);
        if (separator == '\t') {
            schema = schema.withoutQuoteChar();  // TSV (SST-2): quotes are text
        }
        try (Reader reader = bomless(file);
                MappingIterator<Map<String, String>> it = mapper.readerFor(Map.class).with(schema).readValues(reader)) {
            while (it.hasNext()) {
                long line = it.getCurrentLocation().getLineNr();
                Map<String, String> row = it.next();
                rows.add(row);
                lines.add(line);
            }
        }
    }

    private static void readJson(Path file, List<Map<String, String>> rows, List<Long> lines) throws IOException {
        String content = Files.readString(file, StandardCharsets.UTF_8);
        if (content.startsWith("\uFEFF")) {
            content = content.substring(1);
        }
        String trimmed = content.stripLeading();
        if (trimmed.startsWith("[")) {
            JsonNode array = JsonFiles.MAPPER.readTree(trimmed);
            for (int i = 0; i < array.size(); i++) {
                rows.add(jsonRow(file, array.get(i), i + 1));
                lines.add((long) i + 1);
            }
            return;
        }
        String[] split = content.split("\n", -1);
        for (int i = 0; i < split.length; i++) {
            if (!split[i].isBlank()) {
                JsonNode node;
                try {
                    node = JsonFiles.MAPPER.readTree(split[i]);
                } catch (JsonProcessingException e) {
                    throw new DatasetException(file + ":" + (i + 1) + ": the line " + JsonFiles.describe(e), e);
                }
                rows.add(jsonRow(file, node, i + 1));
                lines.add((long) i + 1);
            }
        }
    }

    private static Map<String, String> jsonRow(Path file, JsonNode node, long line) {
        if (!node.isObject()) {
            throw new DatasetException(file + ":" + line + ": expected a JSON object, got " + node.getNodeType());
        }
        Map<String, String> row = new LinkedHashMap<>();
        node.fields().forEachRemaining(f -> row.put(f.getKey(), f.getValue().isValueNode() ? f.getValue().asText()
                : f.getValue().toString()));
        return row;
    }

    /** A UTF-8 reader without the byte-order mark some CSV files start with. */
    private static Reader bomless(Path file) throws IOException {
        BufferedReader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8);
        reader.mark(1);
        if (reader.read() != '\uFEFF') {
            reader.reset();
        }
        return reader;
    }

    public int size() {
        return examples.size();
    }

    /** Index of each example's label in {@link #labels()}. */
    public int[] labelIndices() {
        int[] out = new int[examples.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = labels.indexOf(examples.get(i).label());
        }
        return out;
    }

    /** Examples per class, in label order. */
    public int[] classCounts() {
        int[] counts = new int[labels.size()];
        for (int index : labelIndices()) {
            counts[index]++;
        }
        return counts;
    }

    /** The first {@code n} examples (all of them when there are fewer). */
    public ClassificationDataset head(int n) {
        return new ClassificationDataset(source, examples.subList(0, Math.min(n, examples.size())), labels);
    }

    /**
     * About {@code n} examples drawn per class in proportion (a stratified sample, seeded; file
     * order kept), or all of them when there are no more than {@code n}.
     */
    public ClassificationDataset stratifiedSample(int n, long seed) {
        if (n <= 0) {
            throw new IllegalArgumentException("the sample size must be > 0, got " + n);
        }
        if (n >= examples.size()) {
            return this;
        }
        return stratifiedSplit((double) n / examples.size(), seed).get(1);
    }

    /**
     * A stratified split: within each class, a seeded shuffle puts {@code round(devFraction x count)}
     * examples into the second set and the rest into the first; both keep file order.
     *
     * @return {train, dev}
     */
    public List<ClassificationDataset> stratifiedSplit(double devFraction, long seed) {
        if (!(devFraction > 0 && devFraction < 1)) {
            throw new IllegalArgumentException("the dev fraction must lie in (0, 1), got " + devFraction);
        }
        boolean[] dev = new boolean[examples.size()];
        int[] label = labelIndices();
        Random random = new Random(seed);
        for (int c = 0; c < labels.size(); c++) {
            List<Integer> members = new ArrayList<>();
            for (int i = 0; i < label.length; i++) {
                if (label[i] == c) {
                    members.add(i);
                }
            }
            java.util.Collections.shuffle(members, random);
            int take = (int) Math.round(devFraction * members.size());
            for (int k = 0; k < take; k++) {
                dev[members.get(k)] = true;
            }
        }
        List<ClassificationExample> a = new ArrayList<>(), b = new ArrayList<>();
        for (int i = 0; i < dev.length; i++) {
            (dev[i] ? b : a).add(examples.get(i));
        }
        if (a.isEmpty() || b.isEmpty()) {
            throw new DatasetException(source + ": " + examples.size() + " examples are too few to split " + devFraction
                    + " of them off; give a --dev file");
        }
        return List.of(new ClassificationDataset(source, a, labels), new ClassificationDataset(source, b, labels));
    }
}
