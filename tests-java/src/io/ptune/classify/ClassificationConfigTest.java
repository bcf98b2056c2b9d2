package io.ptune.classify;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.InvalidConfigException;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Templates, verbalizers, losses and head settings: parsing and the errors that name the field. */
class ClassificationConfigTest {
    @Test
    void templateSplitsLikeOpenPrompt() {
        PromptTemplate t = PromptTemplate.parse("{text} It was {mask}.");
        assertEquals(List.of(
                new PromptTemplate.Piece(PromptTemplate.Slot.TEXT, null, false),
                new PromptTemplate.Piece(PromptTemplate.Slot.LITERAL, "It was", true),
                new PromptTemplate.Piece(PromptTemplate.Slot.MASK, null, true),
                new PromptTemplate.Piece(PromptTemplate.Slot.LITERAL, ".", false)), t.pieces());
        assertFalse(t.hasTextB());
        PromptTemplate pair = PromptTemplate.parse("Premise: {text_a}  Hypothesis: {text_b}? {mask}");
        assertTrue(pair.hasTextB());
        assertEquals(new PromptTemplate.Piece(PromptTemplate.Slot.LITERAL, "Hypothesis:", true), pair.pieces().get(2));
    }

    @Test
    void badTemplatesNameTheProblem() {
        InvalidConfigException e = assertThrows(InvalidConfigException.class, () -> PromptTemplate.parse("{text} great"));
        assertEquals("template", e.field());
        assertTrue(e.getMessage().contains("no {mask} slot"), e.getMessage());
        assertTrue(assertThrows(InvalidConfigException.class, () -> PromptTemplate.parse("{text} {mask} {mask}"))
                .getMessage().contains("several {mask}"));
        assertTrue(assertThrows(InvalidConfigException.class, () -> PromptTemplate.parse("{review} {mask}"))
                .getMessage().contains("'{review}' is not a slot"));
        assertTrue(assertThrows(InvalidConfigException.class, () -> PromptTemplate.parse("{text} {mask"))
                .getMessage().contains("never closed"));
        assertTrue(assertThrows(InvalidConfigException.class, () -> PromptTemplate.parse("It was {mask}."))
                .getMessage().contains("exactly one {text}"));
    }

    @Test
    void verbalizerParsesAndChecksLabels() {
        Verbalizer v = Verbalizer.parse("negative=bad, terrible;positive=good,great;");
        assertEquals(Map.of("negative", List.of("bad", "terrible"), "positive", List.of("good", "great")), v.words());
        assertEquals(List.of("negative", "positive"), v.labels());
        assertEquals("negative=bad,terrible;positive=good,great", v.toString());
        InvalidConfigException missing = assertThrows(InvalidConfigException.class,
                () -> v.checkCovers(List.of("negative", "neutral", "positive")));
        assertTrue(missing.getMessage().contains("label 'neutral' of the data is missing from the verbalizer"),
                missing.getMessage());
        assertTrue(assertThrows(InvalidConfigException.class, () -> v.checkCovers(List.of("negative")))
                .getMessage().contains("class 'positive' is not a label of the data"));
        assertTrue(assertThrows(InvalidConfigException.class, () -> Verbalizer.parse("negative bad"))
                .getMessage().contains("has no '='"));
        assertTrue(assertThrows(InvalidConfigException.class, () -> Verbalizer.parse("a=x;a=y"))
                .getMessage().contains("given twice"));
        assertTrue(assertThrows(InvalidConfigException.class, () -> Verbalizer.parse("a=;b=y"))
                .getMessage().contains("class 'a' has no label words"));
    }

    @Test
    void lossesValidate() {
        assertNull(ClassLoss.CROSS_ENTROPY.weights(3));
        assertArrayEquals(new double[] {0.25, 0.75}, ClassLoss.focal(2, List.of(0.25, 0.75)).weights(2));
        assertEquals("classWeights", assertThrows(InvalidConfigException.class,
                () -> ClassLoss.focal(2, List.of(0.25, 0.75)).weights(3)).field());
        assertEquals("focalGamma", assertThrows(InvalidConfigException.class, () -> ClassLoss.focal(-1, null)).field());
        assertEquals("labelSmoothing", assertThrows(InvalidConfigException.class,
                () -> ClassLoss.crossEntropy(1.0, null)).field());
        assertEquals("labelSmoothing", assertThrows(InvalidConfigException.class,
                () -> new ClassLoss(ClassLoss.Kind.FOCAL, 2, null, 0.1)).field());
        assertEquals("classWeights", assertThrows(InvalidConfigException.class,
                () -> ClassLoss.crossEntropy(0, List.of(1.0, 0.0))).field());
    }

    @Test
    void headSettingsMustFitTheHead() {
        assertEquals(PromptTemplate.DEFAULT, ClassificationConfig.builder().head(ClassificationHead.SOFT_VERBALIZER)
                .build().template().text());
        assertNull(ClassificationConfig.builder().build().template());
        assertEquals("verbalizer", assertThrows(InvalidConfigException.class,
                () -> ClassificationConfig.builder().head(ClassificationHead.VERBALIZER).build()).field());
        assertEquals("template", assertThrows(InvalidConfigException.class,
                () -> ClassificationConfig.builder().template("{text} {mask}").build()).field());
        assertEquals("calibrate", assertThrows(InvalidConfigException.class,
                () -> ClassificationConfig.builder().calibrate(true).build()).field());
        assertEquals("pooling", assertThrows(InvalidConfigException.class,
                () -> ClassificationConfig.builder().head(ClassificationHead.VERBALIZER).verbalizer("a=x;b=y")
                        .pooling(Pooling.MEAN).build()).field());
        assertEquals("head", assertThrows(InvalidConfigException.class, () -> ClassificationHead.parse("svm")).field());
        assertEquals(Pooling.FIRST_TEXT, Pooling.parse("first-text"));
        assertEquals(ClassificationHead.SOFT_VERBALIZER, ClassificationHead.parse("soft-verbalizer"));
    }
}
