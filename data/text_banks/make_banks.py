"""Write clipinterp's text banks from the vocabularies and templates below.

Run ``python data/text_banks/make_banks.py [OUT_DIR]`` (OUT_DIR defaults to this folder). The
output is deterministic: no random module, no clock; where a template has more fillings than the
bank wants, the fillings kept are the first ones in the order of their SHA-1 hash.

Files written:

* ``general.txt``: short image descriptions (2 to 8 words) over objects, scenes, colours,
  textures, shapes, materials, places, counts, styles, lighting, people and emotions.
* ``common_words.txt``: about 1,000 frequent image-related English words, one a line, sorted.
* ``shapes.txt`` / ``shapes.tsv``: descriptions of the synthetic shapes world; the tsv has the
  columns ``text, attribute, value``; a line naming several attributes joins them with ``+``
  (``color+shape``, ``red+circle``). Its words are the world's caption words plus a few
  prompt words (``a photo of``, ``an image of``, ``some``).
* ``shapes_attributes.json``: attribute name -> list of values of the shapes world.
"""
from __future__ import annotations

import csv
import hashlib
import json
import sys
from itertools import product
from pathlib import Path
from typing import Iterable, Sequence

MIN_WORDS, MAX_WORDS = 2, 8
MIN_GENERAL = 3000

# ---------------------------------------------------------------------------- grammar helpers

_IRREGULAR_PLURALS = {
    "person": "people", "child": "children", "man": "men", "woman": "women", "mouse": "mice",
    "goose": "geese", "sheep": "sheep", "fish": "fish", "deer": "deer", "knife": "knives",
    "leaf": "leaves", "wolf": "wolves", "shelf": "shelves", "foot": "feet", "tooth": "teeth",
    "tomato": "tomatoes", "potato": "potatoes", "mango": "mangoes", "loaf": "loaves",
    "scarf": "scarves", "die": "dice", "cactus": "cacti",
}
_AN_EXCEPTIONS = {"uniform", "unicorn", "university", "unicycle", "ukulele", "one", "european",
                  "user", "utensil", "used"}


def plural(noun: str) -> str:
    """English plural of a noun or a noun phrase (the last word is inflected)."""
    head, _, last = noun.rpartition(" ")
    if last in _IRREGULAR_PLURALS:
        word = _IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in tuple("aeiou"):
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def a(phrase: str) -> str:
    """``phrase`` with its indefinite article: ``a chair``, ``an apple``, ``a uniform``."""
    first = phrase.split()[0].lower()
    vowel = first[0] in "aeiou" and first not in _AN_EXCEPTIONS and not first.startswith("uni")
    return ("an " if vowel or first in {"hour", "honest", "x-ray"} else "a ") + phrase


def pick(candidates: Iterable[str], n: int, salt: str) -> list[str]:
    """At most ``n`` of ``candidates`` (2..8 words each), chosen by hash: deterministic, spread."""
    fitting = sorted({c for c in candidates if MIN_WORDS <= len(c.split()) <= MAX_WORDS})
    fitting.sort(key=lambda c: hashlib.sha1(f"{salt}|{c}".encode()).hexdigest())
    return sorted(fitting[:n])


def fill(template: str, **slots: Sequence[str]) -> list[str]:
    """Every filling of ``template`` with the slot values (a cartesian product)."""
    names = list(slots)
    return [template.format(**dict(zip(names, values))) for values in product(*(slots[k] for k in names))]


# ---------------------------------------------------------------------------- vocabularies

COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
          "gray", "golden", "silver", "turquoise", "beige", "navy blue", "maroon", "teal",
          "lime green", "dark green", "light blue", "bright red", "pale yellow", "crimson",
          "lavender", "olive green", "magenta", "cream"]
BASIC_COLORS = COLORS[:12]
COLOR_NOUNS = ["gold" if c == "golden" else c for c in COLORS]

HOUSEHOLD = ["chair", "table", "sofa", "bed", "desk", "bench", "shelf", "stool", "cabinet",
             "wardrobe", "armchair", "bookcase", "rocking chair", "cup", "mug", "plate", "bowl",
             "teapot", "kettle", "spoon", "frying pan", "vase", "jar", "bottle", "wine glass",
             "cutting board", "laptop", "smartphone", "television", "camera", "keyboard",
             "radio", "microwave", "refrigerator", "washing machine", "clock", "lamp",
             "light bulb", "remote control", "game controller", "hammer", "screwdriver",
             "wrench", "shovel", "ladder", "axe", "paintbrush", "toolbox", "hat", "dress", "shirt",
             "jacket", "coat", "scarf", "sweater", "skirt", "tie", "backpack", "handbag",
             "umbrella", "boot", "sneaker", "glove", "belt", "helmet", "raincoat", "t-shirt",
             "suitcase", "wallet", "wristwatch", "ball", "kite", "teddy bear", "balloon", "doll",
             "toy car", "candle", "book", "notebook", "pencil", "pen", "flag", "mirror", "pillow",
             "blanket", "basket", "box", "bucket", "key", "padlock", "coin", "ring", "necklace",
             "mailbox", "trophy", "globe", "tent", "flower pot", "door", "window", "fence",
             "staircase", "fountain", "statue", "bicycle", "sink", "bathtub", "toothbrush",
             "towel", "curtain", "rug", "fan", "guitar", "piano", "violin", "drum", "trumpet",
             "saxophone", "microphone", "headset", "envelope", "gift box", "crown", "sword",
             "shield", "anchor", "telescope", "typewriter", "chandelier", "birdcage", "lantern"]
SMALL_OBJECTS = ["cup", "mug", "bowl", "vase", "jar", "bottle", "wine glass", "laptop",
                 "smartphone", "camera", "clock", "lamp", "candle", "book", "notebook", "pencil",
                 "pen", "coin", "ring", "necklace", "key", "padlock", "teapot", "kettle", "apple",
                 "banana", "wallet", "wristwatch", "toy car", "teddy bear", "gift box", "hat",
                 "basket", "flower pot", "headset", "envelope", "plate", "spoon", "doll", "ball"]
SURFACES = ["on a wooden table", "on the floor", "on a kitchen counter", "on a white background",
            "on a shelf", "on the grass", "in the sand", "on a bed", "on a desk", "in the snow",
            "on a marble surface", "on a windowsill"]
MATERIAL_OBJECTS = {
    "wooden": ["chair", "table", "bench", "stool", "shelf", "cabinet", "desk", "door", "fence",
               "box", "spoon", "bowl", "cutting board", "ladder", "boat", "bridge", "sign",
               "floor", "crate", "barrel", "cabin", "clock", "toy", "staircase"],
    "metal": ["chair", "table", "bench", "bucket", "ladder", "fence", "door", "box", "lamp",
              "bridge", "gate", "spoon", "shelf", "sign", "pipe", "mailbox", "toolbox", "roof"],
    "glass": ["vase", "bottle", "jar", "table", "door", "bowl", "cup", "building", "teapot",
              "lamp", "sculpture", "ornament", "roof", "wall"],
    "plastic": ["chair", "bottle", "cup", "bucket", "toy car", "box", "bag", "spoon", "table",
                "container", "bowl", "toy", "bin"],
    "leather": ["sofa", "armchair", "jacket", "bag", "boot", "belt", "wallet", "chair", "saddle",
                "glove", "handbag", "notebook"],
    "ceramic": ["vase", "mug", "plate", "bowl", "teapot", "tile", "pot", "jar", "cup", "figurine"],
    "stone": ["wall", "bridge", "house", "bench", "statue", "path", "fountain", "tower",
              "staircase", "well", "church", "arch"],
    "brick": ["wall", "house", "building", "chimney", "path", "oven", "fireplace", "tower"],
    "wool": ["sweater", "scarf", "blanket", "hat", "glove", "sock", "rug"],
    "straw": ["hat", "basket", "bag", "roof"],
    "wicker": ["basket", "chair", "table", "lamp"],
    "marble": ["statue", "floor", "staircase", "countertop", "table", "column", "bust"],
    "gold": ["ring", "crown", "necklace", "coin", "statue", "watch", "trophy", "frame"],
    "silver": ["ring", "spoon", "necklace", "coin", "teapot", "watch", "fork", "bracelet"],
    "paper": ["lantern", "airplane", "bag", "crane", "boat", "cup", "star", "flower"],
    "copper": ["kettle", "pot", "roof", "pipe", "statue", "mug"],
    "concrete": ["wall", "building", "bridge", "staircase", "bench", "floor", "tower"],
    "cardboard": ["box", "tube", "sign", "robot"],
    "bamboo": ["fence", "chair", "basket", "bridge", "raft", "hut"],
    "rubber": ["ball", "duck", "boot", "tire", "glove"],
    "velvet": ["sofa", "dress", "curtain", "chair"],
    "silk": ["scarf", "dress", "tie", "shirt", "robe"],
    "denim": ["jacket", "skirt", "shirt", "bag"],
    "ice": ["sculpture", "castle", "cube", "cave"],
    "crystal": ["glass", "chandelier", "vase", "ball"],
    "steel": ["bridge", "beam", "door", "knife", "tower", "pan"],
}
MATERIAL_NOUNS = ["wood", "metal", "glass", "stone", "brick", "marble", "concrete", "plastic",
                  "leather", "wool", "cotton", "silk", "paper", "cardboard", "rubber", "ceramic",
                  "steel", "gold", "silver", "copper", "bamboo", "clay", "ice", "sand", "velvet",
                  "denim", "straw", "wicker", "granite", "porcelain", "aluminum foil", "bronze"]
MADE_OF = {
    "a wall": ["brick", "stone", "wood", "glass", "concrete", "ice", "marble", "granite", "bamboo"],
    "a house": ["wood", "brick", "stone", "glass", "ice", "straw", "bamboo", "clay", "concrete"],
    "a sculpture": ["wood", "metal", "glass", "stone", "marble", "clay", "ice", "bronze", "paper",
                    "sand", "steel", "wire", "recycled plastic"],
    "an object": MATERIAL_NOUNS,
    "a toy": ["wood", "plastic", "metal", "rubber", "paper", "cardboard", "wool", "clay"],
    "a bowl": ["wood", "glass", "metal", "clay", "ceramic", "porcelain", "silver", "gold", "bamboo"],
    "a table": ["wood", "glass", "metal", "marble", "stone", "plastic", "bamboo", "steel", "concrete"],
    "a bridge": ["wood", "stone", "steel", "rope", "bamboo", "concrete", "iron"],
    "a dress": ["silk", "cotton", "velvet", "paper", "wool", "denim", "lace", "leather"],
}
PILES = ["sand", "wood", "stones", "bricks", "gravel", "scrap metal", "paper", "cardboard boxes",
         "gold coins", "ice cubes", "firewood", "clay pots"]
SHEETS = ["glass", "metal", "paper", "plastic", "ice", "cardboard", "steel", "aluminum foil",
          "rubber", "copper", "plywood", "silk"]

MAMMALS = ["dog", "cat", "horse", "cow", "sheep", "goat", "pig", "rabbit", "fox", "wolf", "bear",
           "deer", "lion", "tiger", "elephant", "giraffe", "zebra", "monkey", "gorilla",
           "kangaroo", "panda", "koala", "squirrel", "mouse", "hamster", "camel", "raccoon",
           "hedgehog", "leopard", "cheetah", "rhinoceros", "hippo", "donkey", "llama",
           "polar bear", "puppy", "kitten", "bat", "otter", "moose"]
BIRDS = ["bird", "parrot", "eagle", "owl", "pigeon", "duck", "swan", "penguin", "flamingo",
         "peacock", "chicken", "rooster", "crow", "seagull", "hummingbird", "robin", "goose",
         "pelican", "toucan", "ostrich"]
FLIGHTLESS = {"penguin", "chicken", "rooster", "ostrich", "peacock"}
SEA_ANIMALS = ["fish", "dolphin", "whale", "shark", "octopus", "jellyfish", "turtle", "seal",
               "crab", "starfish", "goldfish", "sea lion", "stingray", "lobster"]
SMALL_ANIMALS = ["butterfly", "bee", "ladybug", "spider", "snail", "ant", "dragonfly", "frog",
                 "lizard", "snake", "beetle", "caterpillar", "grasshopper", "moth"]
MAMMAL_ACTIONS = ["sleeping", "running in a field", "lying in the grass", "in the snow",
                  "eating", "looking at the camera", "in a zoo", "drinking water", "in the rain",
                  "walking on a road", "in the forest", "resting in the shade", "playing"]
BIRD_ACTIONS = ["flying in the sky", "perched on a branch", "sitting on a fence", "in its nest",
                "on the beach", "on a rooftop", "spreading its wings", "in the water"]
SEA_ACTIONS = ["swimming underwater", "in the ocean", "in an aquarium", "near a coral reef",
               "on the beach", "in shallow water"]
SMALL_PLACES = ["on a leaf", "on a flower", "on a rock", "on a branch", "in the grass"]
ANIMAL_ADJECTIVES = ["fluffy", "young", "wild", "wet", "sleepy", "tiny", "huge", "old", "cute",
                     "hungry", "muddy", "spotted"]
ANIMAL_COLORS = ["black", "white", "brown", "gray", "golden", "spotted", "striped"]
COLORED_ANIMALS = ["dog", "cat", "horse", "rabbit", "cow", "sheep", "goat", "bird", "fish",
                   "puppy", "kitten", "snake", "butterfly", "parrot"]
ANIMAL_GROUPS = ["a herd of cows", "a herd of elephants", "a herd of zebras", "a herd of deer",
                 "a herd of goats", "a herd of horses", "a flock of birds", "a flock of sheep",
                 "a flock of pigeons", "a flock of geese", "a flock of seagulls",
                 "a school of fish", "a pack of wolves", "a swarm of bees", "a pride of lions",
                 "a colony of penguins", "a litter of puppies", "a family of ducks"]

PLATE_DISHES = ["pasta", "spaghetti", "fried rice", "sushi", "french fries", "pancakes",
                "scrambled eggs", "salad", "tacos", "dumplings", "curry", "grilled fish",
                "roast chicken", "noodles", "paella", "lasagna", "sausages", "nachos", "waffles",
                "cookies", "steak", "fried chicken", "spring rolls", "oysters", "cheese"]
BOWL_DISHES = ["soup", "ramen", "cereal", "rice", "fruit salad", "oatmeal", "popcorn",
               "strawberries", "cherries", "chili", "ice cream", "yogurt", "berries", "pho",
               "tomato soup", "noodles", "olives", "nuts"]
PRODUCE = ["apple", "banana", "orange", "lemon", "strawberry", "pineapple", "watermelon", "mango",
           "peach", "pear", "cherry", "tomato", "carrot", "potato", "onion", "pepper", "cucumber",
           "broccoli", "avocado", "pumpkin", "mushroom", "eggplant", "coconut", "kiwi", "lime",
           "plum", "grapefruit", "cabbage"]
SNACKS = ["hamburger", "hot dog", "sandwich", "burrito", "donut", "croissant", "cupcake",
          "muffin", "bagel", "pretzel", "chocolate bar", "lollipop", "ice cream cone", "pizza",
          "birthday cake", "chocolate cake", "loaf of bread", "pie", "omelette", "kebab"]
DRINKS = ["a cup of coffee", "a cup of tea", "a glass of red wine", "a glass of milk",
          "a glass of orange juice", "a bottle of beer", "a cocktail with a lemon slice",
          "a smoothie", "a milkshake", "a glass of water", "a cup of hot chocolate",
          "a bottle of soda", "a latte with foam art", "a pot of tea", "iced coffee"]
MEALS = ["breakfast on a table", "a picnic on the grass", "a family dinner",
         "a buffet of food", "a barbecue grill with meat", "a street food stall",
         "a bakery display", "a fruit stall at a market", "a chef plating a dish",
         "a dinner table set for guests", "a kitchen full of food", "a lunch box",
         "a vegetable garden", "a farmers market", "a wedding cake", "fresh bread in an oven",
         "a cheese platter", "a box of chocolates", "a jar of honey", "spices in a market"]

ROAD_VEHICLES = ["car", "sports car", "truck", "bus", "school bus", "taxi", "motorcycle",
                 "bicycle", "scooter", "tractor", "van", "jeep", "limousine", "race car",
                 "fire truck", "ambulance", "police car", "pickup truck", "camper van",
                 "delivery truck", "convertible"]
WATER_VEHICLES = ["boat", "sailboat", "ship", "cruise ship", "canoe", "kayak", "yacht",
                  "fishing boat", "ferry", "rowing boat", "speedboat", "cargo ship"]
OTHER_VEHICLES = ["an airplane in the sky", "a helicopter above the city",
                  "a hot air balloon over a valley", "a train crossing a bridge",
                  "a train station platform", "a tram in the city", "a subway train",
                  "a steam locomotive", "a rocket launch", "a submarine", "a skateboard",
                  "a horse carriage", "a cable car", "a fighter jet", "a jet on a runway",
                  "a freight train in the desert", "a high-speed train", "a gondola in Venice",
                  "a spaceship in orbit", "a satellite in space", "a glider in the clouds",
                  "a traffic jam", "a parking lot full of cars", "a gas station"]
ROADS = ["on a highway", "on a city street", "on a dirt road", "on a mountain road",
         "in the rain", "at night", "in traffic", "in the desert", "on a bridge", "in the snow"]
WATERS = ["on a lake", "in a harbor", "at sea", "on a river", "at sunset", "near the shore"]

OUTDOOR_PLACES = ["beach", "forest", "desert", "mountain", "lake", "river", "waterfall", "field",
                  "meadow", "jungle", "canyon", "glacier", "volcano", "island", "cliff", "cave",
                  "valley", "swamp", "coral reef", "savanna", "vineyard", "farm", "garden", "park",
                  "playground", "harbor", "bridge", "highway", "city street", "alley",
                  "market", "town square", "parking lot", "train station", "airport",
                  "stadium", "village", "suburb", "construction site", "cemetery", "campsite",
                  "ski slope", "golf course", "race track", "castle", "temple", "factory",
                  "wind farm", "rice field", "orchard", "pier", "boardwalk", "rooftop",
                  "marina", "riverbank", "waterfront", "countryside", "road"]
AERIAL_PLACES = ["beach", "forest", "desert", "lake", "river", "city", "harbor", "island",
                 "farm", "highway", "stadium", "village", "coastline", "mountain range",
                 "rice field", "parking lot", "golf course", "airport", "port", "suburb",
                 "river delta", "canyon", "vineyard", "glacier", "city park", "ring road",
                 "solar farm", "football stadium", "crossroads", "container port"]
INDOOR_PLACES = ["kitchen", "living room", "bedroom", "bathroom", "office", "classroom",
                 "library", "restaurant", "cafe", "bar", "supermarket", "shopping mall",
                 "museum", "gym", "hospital room", "church", "hotel lobby", "laboratory",
                 "warehouse", "garage", "attic", "basement", "subway station", "concert hall",
                 "theater", "swimming pool", "bakery", "barbershop", "airport terminal",
                 "art gallery", "train carriage", "factory", "studio", "waiting room",
                 "server room", "greenhouse", "dining room", "home office"]
HOME_PLACES = ["kitchen", "living room", "bedroom", "bathroom", "dining room", "attic",
               "home office", "cafe", "library"]
PLACE_ADJECTIVES = ["crowded", "empty", "quiet", "busy", "beautiful", "abandoned", "dirty",
                    "clean", "tiny", "huge", "remote", "famous"]
INDOOR_ADJECTIVES = ["empty", "crowded", "modern", "old", "messy", "dark", "bright", "small",
                     "large", "clean", "abandoned", "luxurious"]

COUNTRIES = ["Japan", "China", "India", "Italy", "France", "Spain", "Greece", "Egypt", "Morocco",
             "Mexico", "Brazil", "Peru", "Argentina", "Kenya", "South Africa", "Nigeria",
             "Ethiopia", "Turkey", "Russia", "Norway", "Iceland", "Scotland", "Ireland",
             "England", "Germany", "the Netherlands", "Switzerland", "Austria", "Poland",
             "Thailand", "Vietnam", "Indonesia", "Korea", "Nepal", "Iran", "Cuba", "Jamaica",
             "Canada", "Alaska", "Hawaii", "Australia", "New Zealand", "Chile", "Colombia",
             "the Philippines", "Portugal", "Sweden", "Finland", "Mongolia", "Tanzania",
             "Madagascar", "Texas", "Bali", "Tuscany", "Provence", "Siberia"]
COUNTRY_TEMPLATES = ["a street in {p}", "a market in {p}", "a village in {p}",
                     "a landscape in {p}", "a photo taken in {p}", "a traditional house in {p}",
                     "traditional food from {p}", "people in {p}", "a road trip in {p}",
                     "a farm in {p}", "a wedding in {p}", "a festival in {p}",
                     "traditional clothing from {p}", "a small town in {p}"]
CITIES = ["Tokyo", "Paris", "London", "New York", "Rome", "Venice", "Istanbul", "Cairo",
          "Mumbai", "Beijing", "Shanghai", "Hong Kong", "Seoul", "Bangkok", "Dubai", "Moscow",
          "Berlin", "Amsterdam", "Barcelona", "Lisbon", "Prague", "Vienna", "Sydney",
          "Rio de Janeiro", "Mexico City", "Los Angeles", "San Francisco", "Chicago", "Havana",
          "Marrakesh", "Kyoto", "Singapore", "Jerusalem", "Athens", "Buenos Aires", "Cape Town",
          "Nairobi", "Delhi", "Stockholm", "Las Vegas", "Hanoi", "Lagos"]
CITY_TEMPLATES = ["a street in {p}", "the skyline of {p}", "a night view of {p}",
                  "a cafe in {p}", "a busy road in {p}", "tourists in {p}",
                  "a postcard from {p}", "rooftops of {p}", "a taxi in {p}", "a park in {p}",
                  "an apartment in {p}", "a subway in {p}"]
LANDMARKS = ["the Eiffel Tower", "the Great Wall of China", "the pyramids of Giza",
             "the Statue of Liberty", "the Taj Mahal", "the Colosseum", "Big Ben",
             "the Golden Gate Bridge", "Mount Fuji", "the Sydney Opera House",
             "the Leaning Tower of Pisa", "Machu Picchu", "Stonehenge", "the Acropolis",
             "the Grand Canyon", "Niagara Falls", "Times Square", "Tower Bridge", "the Kremlin",
             "Angkor Wat", "the Sphinx", "Mount Everest", "the Burj Khalifa", "the Alps",
             "the Sahara desert", "the Amazon rainforest", "the Brandenburg Gate"]
LANDMARK_TEMPLATES = ["a photo of {p}", "{p} at night", "tourists at {p}", "a postcard of {p}",
                      "a painting of {p}", "{p} in the fog", "{p} at sunset"]

PEOPLE = ["man", "woman", "boy", "girl", "child", "baby", "teenager", "old man", "old woman",
          "young woman", "young man", "couple", "family", "group of friends", "bride", "groom",
          "doctor", "nurse", "chef", "soldier", "police officer", "firefighter", "farmer",
          "fisherman", "athlete", "dancer", "musician", "student", "teacher",
          "construction worker", "businessman", "businesswoman", "scientist", "painter",
          "photographer", "pilot", "astronaut", "clown", "surfer", "tourist", "monk", "cowboy",
          "waiter", "mechanic", "grandmother", "grandfather", "toddler"]
EVERYDAY_PEOPLE = ["man", "woman", "boy", "girl", "teenager", "old man", "old woman",
                   "young woman", "young man", "student", "tourist", "grandmother"]
WORKERS = ["doctor", "nurse", "chef", "soldier", "police officer", "firefighter", "farmer",
           "fisherman", "construction worker", "scientist", "painter", "photographer", "pilot",
           "astronaut", "waiter", "mechanic", "teacher", "musician", "dancer", "businesswoman"]
FEELINGS = ["smiling", "laughing", "crying", "angry", "sad", "happy", "surprised", "scared",
            "tired", "bored", "worried", "confused", "excited", "calm", "serious", "shy",
            "proud", "nervous", "frustrated", "lonely", "relaxed", "thoughtful", "grumpy",
            "cheerful", "shocked", "sleepy", "joyful", "anxious", "embarrassed", "amused"]
ACTIVITIES = ["reading a book", "riding a bicycle", "cooking dinner", "playing the guitar",
              "talking on the phone", "walking a dog", "drinking coffee",
              "working on a laptop", "sleeping on a couch", "running in a park", "dancing",
              "swimming in the sea", "painting a picture", "taking a photo",
              "eating a sandwich", "waiting for a bus", "climbing a mountain",
              "sitting on a bench", "carrying a box", "holding an umbrella",
              "writing in a notebook", "shopping for groceries", "waving at the camera",
              "giving a speech", "playing chess", "jumping in the air", "hugging a friend",
              "watching television", "gardening", "fishing on a lake", "crossing the street",
              "looking out a window", "brushing their teeth", "washing dishes",
              "playing video games", "doing yoga", "laughing with friends", "singing"]
WEARABLES = ["a suit", "a red dress", "glasses", "a hat", "a hoodie", "a uniform",
             "sunglasses", "a winter coat", "a wedding dress", "a helmet", "a mask",
             "a leather jacket", "a scarf", "a cowboy hat", "a yellow raincoat", "a backpack",
             "headphones", "a kimono", "a sari", "a tuxedo", "a baseball cap", "a swimsuit"]
HAIR = ["short hair", "long hair", "curly hair", "red hair", "blonde hair", "gray hair",
        "a ponytail", "braids", "a beard", "tattoos", "freckles", "a shaved head",
        "a mustache", "dreadlocks"]
PEOPLE_SCENES = ["a crowd of people", "a family portrait", "a group photo of students",
                 "people walking in the street", "a couple holding hands", "identical twins",
                 "a mother holding a baby", "a father and son", "children playing outside",
                 "a crowd at a concert", "people waiting in line", "a meeting in an office",
                 "a wedding ceremony", "a graduation ceremony", "a birthday party",
                 "a protest in the street", "a classroom full of students",
                 "a team of doctors", "soldiers marching", "commuters on a train",
                 "a fashion model on a runway", "a street performer", "a busy office",
                 "an elderly couple", "friends around a campfire", "a selfie of two friends",
                 "a man shaking hands with a woman", "a boy and his dog"]
EMOTION_NOUNS = ["joy", "sadness", "anger", "fear", "surprise", "disgust", "happiness", "love",
                 "grief", "excitement", "boredom", "confusion", "pride", "shame", "loneliness",
                 "hope", "anxiety", "relief", "jealousy", "calm", "panic", "delight"]
MOODS = ["peaceful", "gloomy", "cheerful", "mysterious", "romantic", "eerie", "festive",
         "melancholic", "tense", "dreamy", "chaotic", "calm", "spooky", "nostalgic", "cozy",
         "lonely", "joyful", "somber", "playful", "dramatic"]
EMOTION_SCENES = ["people celebrating a victory", "a tearful goodbye", "a joyful celebration",
                  "a crowd cheering", "a couple kissing", "a child throwing a tantrum",
                  "a mother comforting her child", "friends laughing together",
                  "a frightened cat", "an excited dog", "a sad puppy", "a happy dog",
                  "an angry cat", "a grieving family", "a surprised audience",
                  "a bored student in class", "a proud graduate", "a heated argument",
                  "a warm hug", "a scream of terror", "a big smile", "tears of joy",
                  "a frown", "a wink", "a thumbs up", "a romantic dinner"]

PATTERNS = ["striped", "checkered", "polka dot", "floral", "plaid", "zigzag", "paisley",
            "geometric", "herringbone", "camouflage", "leopard print", "zebra print", "tie-dye",
            "houndstooth", "honeycomb", "chevron", "tartan", "wavy", "spotted", "dotted", "grid",
            "hexagonal", "swirly", "marbled", "diamond", "argyle", "mosaic", "tiled"]
PATTERN_ITEMS = ["pattern", "texture", "background", "wallpaper"]
FABRIC_PATTERNS = ["striped", "checkered", "polka dot", "floral", "plaid", "zigzag", "paisley",
                   "geometric", "herringbone", "camouflage", "leopard print", "zebra print",
                   "tie-dye", "houndstooth", "chevron", "tartan", "spotted", "dotted", "argyle"]
FABRIC_ITEMS = ["fabric", "shirt", "dress", "scarf", "blanket", "umbrella", "carpet", "tie"]
TILE_PATTERNS = ["checkered", "hexagonal", "geometric", "mosaic", "marbled", "diamond", "grid",
                 "herringbone", "honeycomb", "floral"]
TEXTURES = ["rough", "smooth", "fluffy", "furry", "shiny", "glossy", "matte", "wrinkled",
            "cracked", "rusty", "grainy", "bumpy", "soft", "fuzzy", "woven", "knitted",
            "scratched", "wet", "dusty", "muddy", "frosted", "sparkly", "crumpled", "peeling",
            "mossy", "jagged", "silky", "polished", "weathered", "porous", "metallic",
            "transparent", "reflective", "hairy", "spiky", "slimy", "sticky", "fibrous"]
TEXTURE_NOUNS = ["tree bark", "sand", "moss", "grass", "rust", "peeling paint", "cracked mud",
                 "fur", "feathers", "fish scales", "snakeskin", "wool", "denim", "burlap",
                 "gravel", "pebbles", "ice", "foam", "soap bubbles", "water droplets",
                 "wood grain", "marble", "concrete", "brick", "crumpled paper",
                 "corrugated metal", "lace", "velvet", "frost", "honeycomb", "sponge", "cork",
                 "leather", "rock", "canvas", "carpet", "knitted wool", "straw", "salt crystals",
                 "orange peel", "dry leaves", "tire tracks", "sand ripples"]

SHAPES = ["circle", "square", "triangle", "rectangle", "star", "heart", "hexagon", "octagon",
          "oval", "diamond", "spiral", "crescent", "pentagon", "arrow", "cross", "cube",
          "sphere", "cone", "pyramid", "cylinder", "ring", "zigzag line", "wavy line", "dot"]
FLAT_SHAPES = SHAPES[:15]
SHAPED_THINGS = ["balloon", "cookie", "cake", "pillow", "box", "window", "mirror", "sign",
                 "pool", "necklace", "lamp", "logo", "cloud", "rug"]
SHAPE_MATERIALS = ["wood", "stone", "paper", "metal", "glass", "light", "ice", "sand",
                   "flowers", "candles", "leaves", "string"]
SHAPE_PHRASES = ["a round table", "a triangular roof", "a circular window", "a square box",
                 "a spiral staircase", "a curved road", "a pointed roof", "a rectangular pool",
                 "an oval mirror", "a round clock", "a square pizza", "a circular building",
                 "a winding river", "a straight line", "parallel lines", "concentric circles",
                 "a symmetrical building", "an asymmetrical sculpture", "a spherical lamp",
                 "a cylindrical tower", "a cone of ice cream", "a triangular sail",
                 "a hexagonal tile", "an octagonal stop sign", "a diamond ring", "a curved wall",
                 "a crooked tree", "a zigzag road", "an arched doorway", "a domed roof",
                 "a pyramid-shaped roof", "a round face", "a wavy line", "intersecting lines",
                 "a grid of squares", "a row of circles", "a stack of cubes",
                 "overlapping circles", "a circle inside a square", "a star inside a circle",
                 "a triangle on top of a square", "nested squares", "a spiral shell",
                 "a round pebble", "a square window", "geometric shapes", "simple shapes",
                 "abstract shapes", "a heart drawn in the sand"]

ART_STYLES = ["a watercolor painting", "an oil painting", "a pencil sketch", "a charcoal drawing",
              "a cartoon", "a comic book illustration", "an anime drawing", "pixel art",
              "a 3d render", "a vector illustration", "a mosaic", "a woodcut print",
              "a child's drawing", "graffiti", "a tattoo design", "an embroidery",
              "a marble sculpture", "a low poly model", "a vintage poster", "a blueprint",
              "a pop art print", "an ink drawing", "an impressionist painting",
              "an abstract painting", "a cubist painting", "a surreal painting",
              "a digital painting", "a line drawing", "a minimalist illustration",
              "a renaissance painting", "a pastel drawing", "a linocut", "a manga panel",
              "a caricature", "a doodle", "a clay sculpture", "a stained glass window",
              "a fresco", "an acrylic painting", "a crayon drawing", "a technical drawing",
              "a paper cutout", "a chalk drawing", "a storybook illustration"]
ART_SUBJECTS = ["a cat", "a dog", "a house", "a tree", "a woman", "a man", "a city", "a boat",
                "a flower", "a mountain", "a horse", "a bird", "a car", "a face",
                "a bowl of fruit", "a castle", "a lighthouse", "a landscape", "a robot",
                "a dragon", "a forest", "a child", "an owl", "a ship at sea", "a street",
                "a skull", "a portrait", "the ocean", "a sunflower", "a bicycle"]
PHOTO_STYLES = ["a black and white photo", "a sepia photo", "a polaroid photo", "a blurry photo",
                "a long exposure photo", "a macro photo", "a fisheye photo", "a tilt-shift photo",
                "a selfie", "a film photo", "an infrared photo", "a low resolution photo",
                "an overexposed photo", "an underexposed photo", "a grainy photo",
                "a vintage photo", "a professional photo", "an amateur photo",
                "a high contrast photo", "a double exposure photo", "a panoramic photo",
                "a close-up photo", "a drone photo", "a security camera image",
                "a satellite image", "an x-ray image", "a thermal image", "a microscope image",
                "a screenshot", "a pixelated image", "a noisy image", "a studio photo",
                "a candid photo", "a stock photo", "a product photo", "a wide-angle photo",
                "a photo with motion blur", "a photo with shallow depth of field",
                "a cropped photo", "an out of focus photo", "a tilted photo",
                "a photo taken from above", "a photo taken from below", "a mirror selfie",
                "a dashcam photo", "a night vision image", "a photo of a photo",
                "a jpeg with compression artifacts"]
ERAS = ["a photo from the 1920s", "a photo from the 1950s", "a photo from the 1970s",
        "a photo from the 1990s", "a medieval painting", "an ancient greek vase painting",
        "a victorian portrait", "a futuristic city", "a retro advertisement", "a 1980s poster",
        "a 1970s living room", "a steampunk machine", "a cyberpunk street", "an art deco building",
        "a baroque ceiling painting", "an egyptian hieroglyph", "a cave painting",
        "a roman mosaic", "a gothic cathedral window", "a sci-fi spaceship interior",
        "a fantasy castle", "a western movie scene", "a film noir scene",
        "a vintage postcard", "an old map", "a daguerreotype portrait",
        "a modern minimalist interior", "a vaporwave aesthetic", "a rococo painting",
        "a propaganda poster"]

LIGHTING_KINDS = ["soft", "harsh", "dramatic", "warm", "cold", "studio", "natural", "neon", "dim",
                  "bright", "colorful", "fluorescent", "low-key", "high-key", "backlit",
                  "cinematic", "moody", "ambient", "diffused", "candle", "golden hour", "moody blue",
                  "red", "blue", "purple", "green"]
LIT_SUBJECTS = ["portrait", "room", "street", "face", "forest", "city", "kitchen", "stage",
                "bedroom", "alley", "studio", "office"]
LIGHT_SOURCES = ["candles", "a lamp", "neon signs", "the sun", "moonlight", "a campfire",
                 "a flashlight", "street lamps", "a window", "fireworks", "a computer screen",
                 "lanterns", "fairy lights", "a spotlight", "headlights"]
LIGHT_TARGETS = ["a face", "a room", "a street", "a table", "a tent", "a stage", "a garden",
                 "a statue", "a tree", "a building", "a bedroom", "a cave"]
LIGHT_PHENOMENA = ["neon lighting at night", "sun rays through the trees",
                   "light rays through a window", "long shadows at sunset",
                   "a silhouette against the sunset", "a lens flare", "a rainbow over the hills",
                   "reflections on wet pavement", "city lights at night",
                   "fireworks in the night sky", "the northern lights", "a starry night sky",
                   "a full moon", "a dark room", "a brightly lit room", "a sunbeam",
                   "glowing lanterns", "christmas lights", "a lightning strike",
                   "a glowing screen in the dark", "shadows on a wall",
                   "sunlight on the water", "a dark night", "light trails from cars",
                   "a foggy street lamp", "a red sunset", "a pink sky at dawn",
                   "a sunset over the sea", "a sunrise over the mountains",
                   "an overcast sky", "dappled light on the ground",
                   "a glowing campfire at night", "bioluminescent waves", "a solar eclipse",
                   "a disco ball", "stage lights at a concert", "a torch in the dark",
                   "light at the end of a tunnel", "shadows of leaves",
                   "moonlight on a lake", "a window glowing at night", "the blue hour"]
TIMES = ["at sunrise", "at sunset", "at dusk", "at dawn", "at night", "at noon",
         "in the morning", "in the evening", "during golden hour", "under a full moon",
         "under a cloudy sky", "in the midday sun"]
TIME_SCENES = ["a city street", "a beach", "a mountain", "a lake", "a field", "a harbor",
               "a bridge", "a forest", "a city skyline", "a parking lot", "a farm", "a desert",
               "a village", "a river", "a highway", "a park", "a temple", "a lighthouse"]
SILHOUETTES = ["a tree", "a person", "a couple", "a horse", "a camel", "a palm tree", "a bird",
               "a city", "a cat", "a runner", "a mountain", "a boat", "a dancer", "a soldier"]

WORDS_ON_SIGNS = ["stop", "open", "closed", "exit", "sale", "welcome", "danger", "hello", "love",
                  "coffee", "hotel", "taxi", "police", "parking", "pizza", "bar", "hope", "no"]
LANGUAGES = ["English", "Chinese", "Japanese", "Arabic", "Russian", "Hindi", "Korean", "Greek",
             "Hebrew", "Thai", "French", "German", "Spanish", "Latin"]
TEXT_ITEMS = ["handwritten notes", "a page of printed text", "a street sign", "a company logo",
              "a license plate", "a neon sign", "a chalkboard with writing", "a road map",
              "a calendar page", "a barcode", "a QR code", "a book cover", "a movie poster",
              "a menu board", "a handwritten letter", "a typed document", "a receipt",
              "a crossword puzzle", "a math equation on a whiteboard", "a price tag",
              "a traffic sign", "a warning sign", "a billboard", "a text message on a phone",
              "a website screenshot", "a spreadsheet", "a bar chart", "a diagram",
              "a keyboard with letters", "graffiti letters", "a speech bubble", "an emoji",
              "a clock face with numbers", "roman numerals", "a postage stamp", "a banknote",
              "a passport page", "a newspaper headline", "a magazine cover",
              "a birthday card", "subtitles on a screen", "a name tag", "a shop sign",
              "a highway sign", "a scoreboard", "a jersey with a number", "a page of music notes",
              "a flowchart", "a word cloud", "chinese calligraphy", "a typewritten page",
              "a sticky note", "a wall of posters", "a label on a bottle", "a tag cloud"]
LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]

SPORTS = ["soccer", "basketball", "tennis", "baseball", "volleyball", "golf", "rugby",
          "ice hockey", "football", "cricket", "table tennis", "badminton", "boxing",
          "wrestling", "skiing", "snowboarding", "surfing", "swimming", "cycling", "running",
          "skateboarding", "horse riding", "rock climbing", "gymnastics", "fencing", "archery",
          "sailing", "rowing", "karate", "yoga", "bowling", "judo", "water polo", "handball",
          "figure skating", "diving", "kayaking", "weightlifting"]
MATCH_SPORTS = ["soccer", "basketball", "tennis", "baseball", "volleyball", "rugby",
                "ice hockey", "football", "cricket", "table tennis", "badminton", "boxing",
                "wrestling", "fencing", "judo", "water polo", "handball"]
ATHLETES = ["soccer player", "tennis player", "basketball player", "boxer", "skier", "surfer",
            "swimmer", "cyclist", "runner", "gymnast", "golfer", "jockey", "rock climber",
            "baseball player", "hockey player", "skateboarder", "snowboarder", "wrestler",
            "diver", "weightlifter", "marathon runner", "goalkeeper", "sprinter"]
ATHLETE_TEMPLATES = ["a {p} in action", "a {p} celebrating", "a portrait of a {p}",
                     "a {p} training", "a tired {p}", "a young {p}", "a {p} during a race",
                     "a professional {p}"]
SPORT_BALLS = ["soccer", "basketball", "tennis", "baseball", "volleyball", "golf", "rugby",
               "bowling", "beach"]
VENUES = ["soccer field", "basketball court", "tennis court", "baseball stadium",
          "golf course", "swimming pool", "ice rink", "boxing ring", "ski slope", "skate park",
          "race track", "bowling alley", "running track", "gym", "climbing wall",
          "football stadium", "cricket pitch"]

WEATHER = ["rainy", "sunny", "foggy", "snowy", "misty", "stormy", "cloudy", "frozen", "windy",
           "icy", "hazy", "wet"]
WEATHER_PLACES = ["day", "street", "forest", "beach", "village", "mountain", "field", "lake",
                  "harbor", "city", "road", "park", "morning", "evening", "night", "landscape"]
WEATHER_ITEMS = ["a rainy day in the city", "a cloudy sky", "a stormy sky", "a snowstorm",
                 "a thunderstorm over a field", "a rainbow after the rain", "a tornado",
                 "heavy rain", "fresh snow", "frost on a window", "raindrops on glass",
                 "a puddle on the road", "a flooded street", "a heat wave", "a sandstorm",
                 "hailstones on the ground", "icicles on a roof", "dark storm clouds",
                 "a clear blue sky", "fluffy white clouds", "a drought", "a blizzard",
                 "a person in the rain", "an umbrella in the rain", "snow on a car",
                 "a wildfire on a hill"]
SEASONS = ["spring", "summer", "autumn", "winter"]
SEASON_PLACES = ["a forest", "a park", "a garden", "a mountain", "a village", "a lake",
                 "a vineyard", "a city street", "a field", "a road", "an orchard", "a river"]
FLOWERS = ["rose", "tulip", "sunflower", "daisy", "orchid", "lily", "lotus", "lavender",
           "poppy", "cherry blossom", "dandelion", "iris", "hibiscus", "peony", "magnolia"]
TREES = ["oak tree", "pine tree", "palm tree", "birch tree", "maple tree", "willow tree",
         "baobab tree", "bamboo forest", "apple tree", "cherry tree", "christmas tree",
         "bonsai tree", "dead tree", "fallen tree", "giant sequoia", "olive tree"]
NATURE_ITEMS = ["a tall tree", "a cactus in the desert", "wild flowers", "green leaves",
                "a mossy rock", "sand dunes", "ocean waves", "a calm sea", "a rocky shore",
                "a volcano erupting", "a waterfall in the jungle", "a river in a valley",
                "a frozen lake", "an iceberg", "a cave entrance", "a mountain peak",
                "a green hill", "rolling hills", "a canyon at sunset", "a hot spring",
                "a bamboo grove", "autumn leaves on the ground", "cherry blossoms in spring",
                "a winter landscape", "a summer meadow", "a pond with lily pads",
                "a mushroom in the forest", "a spider web with dew", "seaweed on the beach",
                "a stream in the woods", "a forest path", "a lonely tree on a hill",
                "tall grass in the wind", "a coconut palm", "the surface of the moon",
                "the planet earth from space", "a galaxy", "a nebula", "a meteor shower"]

BUILDINGS = ["gothic cathedral", "modern skyscraper", "wooden cabin", "brick house",
             "glass office building", "ancient temple", "medieval castle", "lighthouse",
             "red barn", "mosque", "church", "pagoda", "stone bridge", "clock tower", "windmill",
             "igloo", "treehouse", "log cabin", "apartment block", "farmhouse", "mansion",
             "cottage", "palace", "hut", "greenhouse", "train station", "factory", "skyscraper",
             "school", "hospital", "museum", "bank", "shopping mall", "gas station",
             "parking garage", "police station", "fire station", "houseboat", "bungalow",
             "townhouse", "water tower", "power plant", "dam", "monastery", "ruined abbey"]
BUILDING_TEMPLATES = ["{A}", "the facade of {A}", "{A} at night", "{A} in the snow",
                      "the roof of {A}", "the entrance of {A}", "{A} by the sea",
                      "{A} under construction"]
BODY = ["eye", "hand", "foot", "ear", "nose", "mouth", "face", "pair of lips", "finger",
        "knee", "elbow", "shoulder", "tongue", "fist"]
BODY_ITEMS = ["a fingerprint", "a tattoo on an arm", "a hand with painted nails",
              "a hand holding a pen", "a hand holding a phone", "two hands clasped together",
              "a baby's hand", "an old wrinkled hand", "bare feet in the sand",
              "a skeleton", "a human skull", "a brain scan", "a smiling mouth",
              "blue eyes", "brown eyes", "a tear on a cheek", "a bandaged knee",
              "a footprint in the mud", "a pregnant woman", "muscular arms"]
INSTRUMENTS = ["guitar", "piano", "violin", "drum kit", "trumpet", "saxophone", "flute", "cello",
               "harp", "accordion", "ukulele", "microphone", "electric guitar", "banjo",
               "xylophone", "bagpipes", "harmonica", "double bass"]
MUSIC_ITEMS = ["a rock concert", "an orchestra", "a jazz band", "a street musician",
               "a DJ at a party", "sheet music", "a choir singing", "a music festival",
               "a vinyl record", "a record player", "a singer on stage", "a marching band",
               "a piano recital", "a karaoke night", "a music studio", "a headphone jack"]

COUNT_WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve",
               "twenty"]
COUNT_NOUNS = ["dog", "cat", "bird", "horse", "cow", "sheep", "duck", "fish", "apple", "orange",
               "banana", "egg", "cup", "chair", "car", "bicycle", "boat", "tree", "flower",
               "candle", "balloon", "book", "coin", "bottle", "person", "child", "man", "woman",
               "house", "window", "star", "button", "key", "shoe", "die", "cookie", "pencil",
               "clock", "umbrella", "lamp", "penguin", "elephant", "strawberry", "glass",
               "pumpkin", "tomato", "donut", "soldier"]
PAIRS = ["shoes", "socks", "gloves", "earrings", "dice", "scissors", "sunglasses", "jeans",
         "boots", "chopsticks", "skis", "headphones", "glasses", "lovebirds", "swans",
         "running shoes", "sneakers", "binoculars"]
DOZENS = ["eggs", "roses", "donuts", "cupcakes", "cookies", "bagels", "oysters", "pencils",
          "candles", "muffins"]
QUANTIFIERS = ["many", "a few", "several", "hundreds of", "a large number of", "countless",
               "thousands of", "dozens of"]
ARRANGED = {
    "a pile of": ["books", "coins", "stones", "leaves", "shoes", "tires", "logs", "bricks",
                  "tomatoes", "oranges", "apples", "boxes", "clothes", "rocks"],
    "a stack of": ["books", "plates", "boxes", "chairs", "tires", "pancakes", "coins", "bricks",
                   "logs", "newspapers", "towels"],
    "a row of": ["bicycles", "chairs", "cars", "houses", "windows", "bottles", "umbrellas",
                 "candles", "trees", "lockers", "columns"],
    "a bunch of": ["balloons", "flowers", "bananas", "grapes", "keys", "carrots", "pencils"],
}
QUANTIFIED = ["books", "coins", "stones", "leaves", "birds", "people", "cars", "bottles",
              "boxes", "apples", "balloons", "candles", "chairs", "plates", "shoes", "bicycles",
              "flowers", "tires", "umbrellas", "pencils", "tomatoes", "lights", "stars",
              "windows", "fish", "ducks", "oranges", "logs", "bricks"]
COUNT_ITEMS = ["a single person", "a single tree", "a single apple", "a single flower",
               "a lone tree in a field", "an empty room with one chair", "a crowd of people",
               "an image with many subjects", "an image with a single subject",
               "a group of three friends", "a family of four", "a team of eleven players",
               "a couple on a bench", "twin babies", "baby triplets", "a pair of twins",
               "a large crowd", "an empty street", "a dozen eggs in a carton",
               "one cat and one dog", "two cats and a dog", "a row of five houses",
               "a hand showing three fingers", "a hand showing two fingers", "a bowl of six eggs",
               "seven candles on a cake", "ten candles on a cake", "one red apple among green ones",
               "a pile of coins", "a stack of books", "a line of people"]


# ---------------------------------------------------------------------------- the general bank

def _general_families() -> list[tuple[str, list[str]]]:
    """(family name, its descriptions) in output order."""
    families: list[tuple[str, list[str]]] = []

    def add(name: str, *parts: list[str]) -> None:
        families.append((name, [t for part in parts for t in part]))

    all_animals = MAMMALS + BIRDS + SEA_ANIMALS + SMALL_ANIMALS
    add("objects",
        pick(["a photo of " + a(o) for o in HOUSEHOLD], 70, "obj-photo"),
        pick([a(o) for o in HOUSEHOLD], 35, "obj-bare"),
        pick([a(f"{c} {o}") for c, o in product(COLORS, HOUSEHOLD)], 155, "obj-color"),
        pick([a(f"close-up of {a(o)}") for o in HOUSEHOLD], 30, "obj-closeup"),
        pick([f"{a(o)} {s}" for o, s in product(SMALL_OBJECTS, SURFACES)], 65, "obj-surface"),
        pick([f"an old {o}" for o in HOUSEHOLD] + [f"a broken {o}" for o in HOUSEHOLD]
             + [f"a new {o}" for o in HOUSEHOLD], 35, "obj-state"))
    add("materials",
        pick([a(f"{m} {o}") for m, objs in MATERIAL_OBJECTS.items() for o in objs], 140, "mat"),
        pick(["a photo of " + a(f"{m} {o}") for m, objs in MATERIAL_OBJECTS.items() for o in objs],
             35, "mat-photo"),
        pick([f"{t} made of {m}" for t, ms in MADE_OF.items() for m in ms], 55, "mat-made"),
        pick(fill("a close-up of {m}", m=MATERIAL_NOUNS) + fill("a pile of {m}", m=PILES)
             + fill("a sheet of {m}", m=SHEETS), 30, "mat-noun"))
    add("animals",
        pick(["a photo of " + a(x) for x in all_animals], 40, "ani-photo"),
        pick([a(x) for x in all_animals], 25, "ani-bare"),
        pick([f"{a(m)} {act}" for m, act in product(MAMMALS, MAMMAL_ACTIONS)], 80, "ani-mammal"),
        pick([f"{a(b)} {act}" for b, act in product(BIRDS, BIRD_ACTIONS)
              if not (b in FLIGHTLESS and "fly" in act) and not (b == "bird" and "nest" in act)],
             35, "ani-bird"),
        pick([f"{a(s)} {act}" for s, act in product(SEA_ANIMALS, SEA_ACTIONS)], 25, "ani-sea"),
        pick([f"{a(s)} {p}" for s, p in product(SMALL_ANIMALS, SMALL_PLACES)]
             + [f"a macro photo of {a(s)}" for s in SMALL_ANIMALS], 25, "ani-small"),
        pick([a(f"{adj} {m}") for adj, m in product(ANIMAL_ADJECTIVES, MAMMALS + BIRDS)
              if m not in {"puppy", "kitten"} or adj not in {"young", "old", "huge"}], 35, "ani-adj"),
        pick([a(f"{c} {x}") for c, x in product(ANIMAL_COLORS, COLORED_ANIMALS)], 25, "ani-color"),
        ANIMAL_GROUPS)
    add("food",
        pick(fill("a plate of {f}", f=PLATE_DISHES) + fill("a bowl of {f}", f=BOWL_DISHES),
             40, "food-dish"),
        pick([f"{q} {x}" for q, x in product(["a fresh", "a ripe", "a sliced", "a rotten"], PRODUCE)]
             + [f"half of {a(x)}" for x in PRODUCE]
             + [f"{q} {plural(x)}" for q, x in product(["a pile of", "a basket of", "fresh",
                                                       "a crate of", "a bowl of"], PRODUCE)],
             80, "food-produce"),
        pick(["a photo of " + a(s) for s in SNACKS] + [a(f"homemade {s}") for s in SNACKS]
             + [f"{a(s)} on a plate" for s in SNACKS] + [a(f"half-eaten {s}") for s in SNACKS],
             35, "food-snack"),
        DRINKS, MEALS)
    add("vehicles",
        pick([a(f"{c} {v}") for c, v in product(COLORS, ROAD_VEHICLES + WATER_VEHICLES)],
             65, "veh-color"),
        pick([f"{a(v)} {r}" for v, r in product(ROAD_VEHICLES, ROADS)], 55, "veh-road"),
        pick([f"{a(v)} {w}" for v, w in product(WATER_VEHICLES, WATERS)], 25, "veh-water"),
        pick([f"{q} {v}" for q, v in product(["an old", "a rusty", "a parked", "a toy", "a broken down",
                                              "a vintage", "a crashed", "a brand new"],
                                             ROAD_VEHICLES + WATER_VEHICLES)], 35, "veh-state"),
        OTHER_VEHICLES)
    add("scenes",
        pick([a(f"aerial view of {a(p)}") for p in AERIAL_PLACES], 20, "scene-aerial"),
        pick(["a photo of " + a(p) for p in OUTDOOR_PLACES], 25, "scene-photo"),
        pick([a(f"{adj} {p}") for adj, p in product(PLACE_ADJECTIVES, OUTDOOR_PLACES)], 80, "scene-adj"),
        pick([f"the interior of {a(p)}" for p in INDOOR_PLACES], 20, "scene-interior"),
        pick([a(f"{adj} {p}") for adj, p in product(INDOOR_ADJECTIVES, INDOOR_PLACES)], 65, "scene-indoor"),
        pick([a(f"cozy {p}") for p in HOME_PLACES] + [f"a wide view of {a(p)}" for p in OUTDOOR_PLACES],
             20, "scene-misc"))
    add("locations",
        pick([t.format(p=c) for t, c in product(COUNTRY_TEMPLATES, COUNTRIES)], 140, "geo-country"),
        pick([t.format(p=c) for t, c in product(CITY_TEMPLATES, CITIES)], 90, "geo-city"),
        pick([t.format(p=lm) for t, lm in product(LANDMARK_TEMPLATES, LANDMARKS)], 40, "geo-landmark"))
    add("people",
        pick([a(f"{f} {p}") for f, p in product(FEELINGS, PEOPLE)], 130, "ppl-feeling"),
        pick([f"{a(p)} {act}" for p, act in product(EVERYDAY_PEOPLE, ACTIVITIES)], 100, "ppl-act"),
        pick([f"a portrait of {a(p)}" for p in PEOPLE] + [f"{a(w)} at work" for w in WORKERS]
             + [f"{a(w)} in uniform" for w in ["soldier", "nurse", "police officer", "pilot",
                                               "firefighter", "chef", "waiter"]], 30, "ppl-portrait"),
        pick([f"{a(p)} wearing {w}" for p, w in product(EVERYDAY_PEOPLE, WEARABLES)]
             + [f"{a(p)} in {w}" for p, w in product(["man", "woman", "girl", "boy"], WEARABLES)],
             65, "ppl-wear"),
        pick([f"{a(p)} with {h}" for p, h in product(["man", "woman", "girl", "boy", "old man",
                                                      "old woman", "young woman", "young man"], HAIR)
              if not (h in {"a beard", "a mustache"} and p not in {"man", "old man", "young man"})],
             35, "ppl-hair"),
        PEOPLE_SCENES)
    add("emotions",
        pick(fill("a face showing {e}", e=EMOTION_NOUNS) + fill("an expression of {e}", e=EMOTION_NOUNS)
             + fill("a feeling of {e}", e=EMOTION_NOUNS), 25, "emo-noun"),
        pick([a(f"{f} face") for f in FEELINGS] + [a(f"{f} expression") for f in FEELINGS]
             + [a(f"{f} {x}") for f, x in product(FEELINGS, ["dog", "cat", "crowd", "baby", "puppy"])],
             50, "emo-face"),
        pick([a(f"{m} atmosphere") for m in MOODS] + [a(f"{m} scene") for m in MOODS]
             + [a(f"{m} mood") for m in MOODS], 30, "emo-mood"),
        EMOTION_SCENES)
    add("colours",
        pick(fill("the color {c}", c=COLOR_NOUNS) + [a(f"{c} background") for c in COLORS]
             + [a(f"{c} wall") for c in COLORS] + [f"a mostly {c} image" for c in COLORS]
             + [f"shades of {c}" for c in COLOR_NOUNS] + [f"{c} paint" for c in COLOR_NOUNS]
             + [a(f"bright {c} light") for c in BASIC_COLORS] + [f"a splash of {c} paint" for c in COLOR_NOUNS],
             90, "col-single"),
        pick([f"a {c1} and {c2} pattern" for c1, c2 in product(BASIC_COLORS, BASIC_COLORS) if c1 != c2]
             + [f"{c1} and {c2} stripes" for c1, c2 in product(BASIC_COLORS, BASIC_COLORS) if c1 != c2]
             + [f"a {c1} and {c2} flag" for c1, c2 in product(BASIC_COLORS, BASIC_COLORS) if c1 < c2],
             55, "col-pair"),
        ["a rainbow of colors", "a colorful image", "a monochrome image", "pastel colors",
         "vivid colors", "muted colors", "neon colors", "earth tones", "a grayscale image",
         "a color gradient", "a colorful crowd", "colorful umbrellas", "colored pencils",
         "a paint palette", "a color wheel", "colorful houses", "a black and white image",
         "an all white room", "a dark image", "a faded color photo"])
    add("textures",
        pick([a(f"{p} {i}") for p, i in product(PATTERNS, PATTERN_ITEMS)]
             + [a(f"{p} {i}") for p, i in product(FABRIC_PATTERNS, FABRIC_ITEMS)]
             + [a(f"{p} tile floor") for p in TILE_PATTERNS], 100, "tex-pattern"),
        pick([a(f"{t} surface") for t in TEXTURES] + [a(f"{t} texture") for t in TEXTURES]
             + [a(f"close-up of a {t} surface") for t in TEXTURES], 40, "tex-adj"),
        pick(fill("a close-up of {n}", n=TEXTURE_NOUNS) + fill("the texture of {n}", n=TEXTURE_NOUNS)
             + fill("a macro photo of {n}", n=TEXTURE_NOUNS), 55, "tex-noun"),
        ["a striped pattern", "a repeating pattern", "a seamless texture", "an abstract texture",
         "a noisy texture", "a random pattern", "a regular pattern", "an irregular pattern"])
    add("shapes",
        [a(s) for s in SHAPES],
        pick([a(f"{s} shape") for s in FLAT_SHAPES] + [f"a drawing of {a(s)}" for s in SHAPES]
             + [a(f"{s} outline") for s in FLAT_SHAPES] + [f"many small {plural(s)}" for s in SHAPES],
             35, "shape-basic"),
        pick([a(f"{c} {s}") for c, s in product(BASIC_COLORS, SHAPES)], 55, "shape-color"),
        pick([f"{a(s)} made of {m}" for s, m in product(FLAT_SHAPES, SHAPE_MATERIALS)], 30, "shape-mat"),
        pick([a(f"{s}-shaped {t}") for s, t in product(["heart", "star", "circle", "triangle",
                                                        "square", "diamond", "moon", "flower"],
                                                       SHAPED_THINGS)], 30, "shape-thing"),
        pick([f"{a(s1)} inside {a(s2)}" for s1, s2 in product(FLAT_SHAPES[:8], FLAT_SHAPES[:8])
              if s1 != s2] + [f"{a(s1)} next to {a(s2)}" for s1, s2 in product(FLAT_SHAPES[:8],
                                                                              FLAT_SHAPES[:8])
                              if s1 < s2], 25, "shape-pair"),
        SHAPE_PHRASES)
    add("counts",
        pick([f"{n} {plural(x)}" for n, x in product(COUNT_WORDS, COUNT_NOUNS)], 120, "cnt-plain"),
        pick([f"an image with {n} {plural(x)}" for n, x in product(COUNT_WORDS, COUNT_NOUNS)]
             + [f"a photo of {n} {plural(x)}" for n, x in product(COUNT_WORDS, COUNT_NOUNS)]
             + [f"{n} {plural(x)} in a row" for n, x in product(COUNT_WORDS, COUNT_NOUNS)],
             65, "cnt-frame"),
        pick(fill("a group of {n} people", n=COUNT_WORDS) + fill("a group of {n} children", n=COUNT_WORDS)
             + fill("{n} people sitting at a table", n=COUNT_WORDS), 20, "cnt-people"),
        pick(fill("a pair of {p}", p=PAIRS) + fill("a dozen {d}", d=DOZENS), 25, "cnt-pair"),
        pick([f"{q} {x}" for q, x in product(QUANTIFIERS, QUANTIFIED)]
             + [f"{q} {x}" for q, xs in ARRANGED.items() for x in xs], 55, "cnt-quant"),
        pick(["a single " + x for x in COUNT_NOUNS if x not in {"die"}], 20, "cnt-single"),
        COUNT_ITEMS)
    add("styles",
        [s for s in ART_STYLES if len(s.split()) >= 2],
        pick([f"{s} of {x}" for s, x in product(ART_STYLES, ART_SUBJECTS)], 170, "sty-art"),
        PHOTO_STYLES,
        pick([f"{s} of {x}" for s, x in product(PHOTO_STYLES, ART_SUBJECTS + ["people", "food", "a street"])
              if s.endswith(("photo", "image", "selfie", "screenshot"))], 95, "sty-photo"),
        ERAS)
    add("lighting",
        pick(fill("{k} lighting", k=LIGHTING_KINDS), 26, "light-kind"),
        pick([f"{a(x)} in {k} light" for x, k in product(LIT_SUBJECTS, LIGHTING_KINDS)], 55, "light-subject"),
        pick([f"{t} lit by {s}" for t, s in product(LIGHT_TARGETS, LIGHT_SOURCES)], 40, "light-source"),
        pick([f"{s} {t}" for s, t in product(TIME_SCENES, TIMES)], 70, "light-time"),
        pick([f"a silhouette of {s} at sunset" for s in SILHOUETTES]
             + [f"the shadow of {s}" for s in SILHOUETTES], 20, "light-silhouette"),
        LIGHT_PHENOMENA)
    add("text",
        fill("the letter {l}", l=LETTERS),
        pick(fill("a {c} letter {l}", c=BASIC_COLORS, l=LETTERS) + fill("a sign with the letter {l}", l=LETTERS)
             + fill("a handwritten letter {l}", l=LETTERS), 25, "txt-letter"),
        fill("the number {n}", n=[str(i) for i in range(0, 21)] + ["100", "1000"]),
        pick(fill("a sign that says {w}", w=WORDS_ON_SIGNS) + fill("the word {w} in neon", w=WORDS_ON_SIGNS)
             + fill("the word {w} written in chalk", w=WORDS_ON_SIGNS), 25, "txt-word"),
        pick(fill("text written in {l}", l=LANGUAGES) + fill("a sign in {l}", l=LANGUAGES)
             + fill("a newspaper in {l}", l=LANGUAGES) + fill("a book in {l}", l=LANGUAGES),
             25, "txt-lang"),
        TEXT_ITEMS)
    add("sports",
        pick(fill("a {s} match", s=MATCH_SPORTS) + fill("a {s} game", s=MATCH_SPORTS), 25, "sport-match"),
        pick(fill("people playing {s}", s=MATCH_SPORTS) + fill("people practicing {s}", s=SPORTS)
             + fill("children learning {s}", s=SPORTS), 25, "sport-people"),
        pick([t.format(p=x) for t, x in product(ATHLETE_TEMPLATES, ATHLETES)], 50, "sport-athlete"),
        pick(fill("a {b} ball", b=SPORT_BALLS) + fill("a {b} ball on the grass", b=SPORT_BALLS),
             14, "sport-ball"),
        pick([a(v) for v in VENUES] + [f"an empty {v}" for v in VENUES]
             + [f"a crowd at {a(v)}" for v in VENUES], 25, "sport-venue"),
        pick(fill("{s} equipment", s=SPORTS) + fill("a {s} team celebrating", s=MATCH_SPORTS),
             25, "sport-misc"))
    add("nature",
        pick([a(f"{w} {p}") for w, p in product(WEATHER, WEATHER_PLACES)], 55, "nat-weather"),
        WEATHER_ITEMS,
        pick([f"{p} in {s}" for p, s in product(SEASON_PLACES, SEASONS)], 25, "nat-season"),
        pick(fill("a field of {f}", f=[plural(x) for x in FLOWERS])
             + [a(f"{c} {f}") for c, f in product(BASIC_COLORS, FLOWERS)]
             + fill("a bouquet of {f}", f=[plural(x) for x in FLOWERS])
             + [f"a single {f}" for f in FLOWERS], 50, "nat-flower"),
        pick([a(t) for t in TREES] + [f"{a(t)} in a field" for t in TREES]
             + [f"{a(t)} in winter" for t in TREES], 20, "nat-tree"),
        NATURE_ITEMS)
    add("buildings",
        pick([t.format(A=a(b)) for t, b in product(BUILDING_TEMPLATES, BUILDINGS)]
             + [f"{q} {b}" for q, b in product(["an old", "an abandoned"], BUILDINGS) if " " not in b],
             90, "bld"))
    add("body and music",
        pick([f"a close-up of {a(b)}" for b in BODY] + [f"a drawing of {a(b)}" for b in BODY],
             20, "body"),
        BODY_ITEMS,
        pick([a(i) for i in INSTRUMENTS] + [f"a person playing the {i}" for i in INSTRUMENTS]
             + [f"{a(i)} on a stage" for i in INSTRUMENTS] + [f"an old {i}" for i in INSTRUMENTS],
             30, "music"),
        MUSIC_ITEMS)
    return families


def general_bank() -> list[str]:
    """The general bank: distinct descriptions, families in order, first occurrence kept."""
    seen: dict[str, None] = {}
    for _, texts in _general_families():
        for text in texts:
            n_words = len(text.split())
            if not MIN_WORDS <= n_words <= MAX_WORDS:
                raise ValueError(f"{text!r} has {n_words} words; descriptions need {MIN_WORDS}-{MAX_WORDS}")
            seen.setdefault(text, None)
    if len(seen) < MIN_GENERAL:
        raise ValueError(f"only {len(seen)} distinct descriptions; the bank needs {MIN_GENERAL}")
    return list(seen)


# ---------------------------------------------------------------------------- common words

EXTRA_COMMON_WORDS = """
photo picture image painting drawing sketch art poster portrait landscape view scene close-up
background foreground object thing shape color light shadow dark bright pattern texture surface
edge corner line dot stripe spot circle square triangle star heart cross arrow ring spiral wave
person people man woman boy girl child children baby kid adult teenager family friend crowd
group team couple mother father brother sister son daughter grandmother grandfather king queen
prince princess doctor nurse chef soldier police teacher student worker farmer artist singer
dancer player driver pilot sailor fisherman hunter tourist bride groom clown robot ghost
monster angel alien zombie hero face head hair eye eyes nose mouth lips ear teeth tongue neck
shoulder arm hand finger fingers leg knee foot feet skin beard mustache smile tear body back
animal dog cat horse cow pig sheep goat chicken duck bird fish mouse rabbit bear lion tiger
elephant monkey snake frog turtle insect butterfly bee spider whale dolphin shark owl eagle
parrot penguin deer fox wolf giraffe zebra camel donkey squirrel bat crab octopus
tree flower grass leaf leaves plant forest garden park field farm mountain hill valley river
lake sea ocean beach island desert rock stone sand snow ice water rain cloud sky sun moon star
stars wind storm fog fire smoke earth ground soil mud dust wave waves sunset sunrise night day
morning evening winter summer spring autumn weather rainbow lightning thunder volcano cave
house home building room kitchen bedroom bathroom office school church temple castle tower
bridge road street city town village shop store market restaurant cafe hotel hospital museum
library station airport stadium factory farm barn garage wall floor roof door window stairs
fence gate yard pool fountain statue monument tent cabin palace prison
car truck bus train plane airplane boat ship bicycle bike motorcycle helicopter rocket taxi
tractor wheel tire engine road traffic highway parking
food bread cake pie pizza burger sandwich salad soup rice pasta noodles meat chicken beef fish
egg eggs cheese butter milk coffee tea juice wine beer water apple banana orange lemon grape
strawberry cherry tomato potato carrot onion corn bean fruit vegetable sugar salt chocolate
candy cookie dessert breakfast lunch dinner meal drink bottle cup glass plate bowl spoon fork
knife pot pan oven table chair sofa bed desk lamp clock mirror shelf box bag basket bucket
book paper pen pencil letter number word sign map flag money coin card ticket gift toy ball
doll game puzzle computer laptop phone screen camera television radio keyboard battery cable
machine tool hammer key lock knife scissors needle rope chain net
clothes shirt dress skirt pants jeans jacket coat hat cap shoe shoes boot boots sock glove
scarf tie belt ring necklace watch glasses sunglasses uniform costume mask helmet umbrella
wood metal glass plastic paper stone brick concrete steel iron gold silver copper leather
cotton wool silk fabric cloth rubber clay ceramic marble
red orange yellow green blue purple pink brown black white gray grey golden colorful pale
dark bright light vivid pastel neon
big small large tiny huge little tall short long wide narrow thick thin round flat curved
straight sharp soft hard smooth rough wet dry hot cold warm cool new old young ancient modern
clean dirty empty full open closed broken heavy light fast slow high low deep shallow
happy sad angry scared surprised tired calm excited bored lonely funny cute beautiful ugly
pretty handsome strange scary friendly serious quiet loud busy crowded peaceful
striped dotted checkered spotted plain shiny glossy fluffy furry fuzzy wooden metallic
transparent blurry sharp dim
one two three four five six seven eight nine ten twelve hundred thousand many few several
single pair double couple dozen half
left right top bottom front back middle center side inside outside above below under over
near far between behind next
run running walk walking sit sitting stand standing sleep sleeping eat eating drink drinking
play playing swim swimming fly flying jump jumping dance dancing sing singing read reading
write writing cook cooking drive driving ride riding climb climbing fall falling hold holding
carry carrying look looking watch watching smile smiling laugh laughing cry crying fight
fighting work working build building paint painting throw throwing catch catching
music song guitar piano drum violin concert party wedding festival birthday holiday christmas
game sport soccer football basketball tennis baseball golf race goal team match
war battle army weapon gun sword shield knight castle dragon magic fantasy
science space planet galaxy moon satellite robot machine computer
art style cartoon anime comic sketch watercolor oil pencil ink graffiti sculpture mosaic pixel
vintage retro classic futuristic abstract realistic surreal minimalist
sunlight moonlight lamp candle neon glow shine shadow silhouette reflection sparkle flash
summer winter holiday vacation travel journey trip adventure
"""


def common_words() -> list[str]:
    """About 1,000 frequent image-related words: the list above plus the one-word vocabulary."""
    words = set(EXTRA_COMMON_WORDS.split())
    vocab_lists = [COLORS, HOUSEHOLD, MATERIAL_NOUNS, MAMMALS, BIRDS, SEA_ANIMALS, SMALL_ANIMALS,
                   PRODUCE, ROAD_VEHICLES, WATER_VEHICLES, OUTDOOR_PLACES, INDOOR_PLACES, PEOPLE,
                   FEELINGS, EMOTION_NOUNS, MOODS, PATTERNS, TEXTURES, SHAPES, SPORTS, WEATHER,
                   SEASONS, FLOWERS, INSTRUMENTS, LIGHTING_KINDS, BODY]
    for vocab in vocab_lists:
        words.update(w for w in vocab if " " not in w and w.isalpha())
    return sorted(w.lower() for w in words)


# ---------------------------------------------------------------------------- the shapes world

SHAPES_ATTRIBUTES: dict[str, list[str]] = {
    "shape": ["circle", "square", "triangle", "star", "cross"],
    "color": ["red", "green", "blue", "yellow", "purple", "orange"],
    "size": ["small", "large"],
    "position": ["left", "right", "top", "bottom"],
    "count": ["one", "two", "three"],
    "background_texture": ["plain", "stripes", "dots", "checker"],
    "background_color": ["white", "black", "gray"],
}
_SHAPE_PLURALS = {s: plural(s) for s in SHAPES_ATTRIBUTES["shape"]}
_POSITION_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top",
                     "bottom": "at the bottom"}
_TEXTURE_WORDS = {"plain": "plain", "stripes": "striped", "dots": "dotted", "checker": "checkered"}
_PREFIXES = ["", "a photo of ", "an image of ", "a picture of "]


def shapes_rows() -> list[tuple[str, str, str]]:
    """(text, attribute, value) rows of the shapes bank, in caption word order of the world."""
    rows: list[tuple[str, str, str]] = []
    att = SHAPES_ATTRIBUTES
    for shape in att["shape"]:
        rows += [(p + a(shape), "shape", shape) for p in _PREFIXES]
        rows.append((f"some {_SHAPE_PLURALS[shape]}", "shape", shape))
    for color in att["color"]:
        rows += [(p + f"a {color} shape", "color", color) for p in _PREFIXES]
        rows.append((f"some {color} shapes", "color", color))
    for size in att["size"]:
        rows += [(p + f"a {size} shape", "size", size) for p in _PREFIXES]
        rows.append((f"some {size} shapes", "size", size))
    for pos in att["position"]:
        rows += [(p + f"a shape {_POSITION_PHRASES[pos]}", "position", pos) for p in _PREFIXES]
        rows.append((f"shapes {_POSITION_PHRASES[pos]}", "position", pos))
    for count in att["count"]:
        noun = "shape" if count == "one" else "shapes"
        rows += [(p + f"{count} {noun}", "count", count) for p in ["", "a photo of ", "an image with "]]
    for tex in att["background_texture"]:
        word = _TEXTURE_WORDS[tex]
        rows += [(p + a(f"{word} background"), "background_texture", tex) for p in _PREFIXES]
        rows.append((f"a shape on a {word} background", "background_texture", tex))
    for bg in att["background_color"]:
        rows += [(p + a(f"{bg} background"), "background_color", bg) for p in _PREFIXES]
        rows.append((f"a shape on a {bg} background", "background_color", bg))
    for color, shape in product(att["color"], att["shape"]):
        rows.append((f"a {color} {shape}", "color+shape", f"{color}+{shape}"))
    for size, shape in product(att["size"], att["shape"]):
        rows.append((f"a {size} {shape}", "size+shape", f"{size}+{shape}"))
    for count, shape in product(att["count"][1:], att["shape"]):
        rows.append((f"{count} {_SHAPE_PLURALS[shape]}", "count+shape", f"{count}+{shape}"))
    for shape, pos in product(att["shape"], att["position"]):
        rows.append((f"{a(shape)} {_POSITION_PHRASES[pos]}", "shape+position", f"{shape}+{pos}"))
    for shape, tex in product(att["shape"], att["background_texture"]):
        rows.append((f"{a(shape)} on {a(_TEXTURE_WORDS[tex] + ' background')}",
                     "shape+background_texture", f"{shape}+{tex}"))
    for color, bg in product(att["color"], att["background_color"]):
        rows.append((f"a {color} shape on a {bg} background", "color+background_color", f"{color}+{bg}"))
    texts = [r[0] for r in rows]
    if len(set(texts)) != len(texts):
        raise ValueError("the shapes bank has duplicate lines")
    return rows


# ---------------------------------------------------------------------------- writing

def write_banks(out_dir: Path) -> dict[str, int]:
    """Write every bank file into ``out_dir``; returns lines per text file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    general, words, rows = general_bank(), common_words(), shapes_rows()
    (out_dir / "general.txt").write_text("\n".join(general) + "\n", encoding="utf-8")
    (out_dir / "common_words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    (out_dir / "shapes.txt").write_text("\n".join(r[0] for r in rows) + "\n", encoding="utf-8")
    with open(out_dir / "shapes.tsv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["text", "attribute", "value"])
        writer.writerows(rows)
    (out_dir / "shapes_attributes.json").write_text(json.dumps(SHAPES_ATTRIBUTES, indent=2) + "\n",
                                                   encoding="utf-8")
    return {"general": len(general), "common_words": len(words), "shapes": len(rows)}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    for name, n in write_banks(target).items():
        print(f"{name}: {n} lines")
