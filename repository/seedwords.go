package repository

// Word lists for the seed. Changing any of them changes the seeded rows, so
// append rather than edit if a seed must stay reproducible across versions.

var seedGenres = []string{
	"Fiction", "Science Fiction", "Fantasy", "Mystery", "Thriller", "Romance",
	"Historical Fiction", "Horror", "Biography", "History", "Poetry",
	"Children's", "Philosophy", "Travel",
}

var seedLanguages = []string{
	"English", "French", "German", "Spanish", "Italian", "Japanese",
	"Portuguese", "Russian",
}

// seedLanguageWeights skews the catalog towards English, as a real library's.
var seedLanguageWeights = []int{60, 9, 8, 8, 5, 4, 3, 3}

var seedFirstNames = []string{
	"James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
	"William", "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph",
	"Jessica", "Thomas", "Sarah", "Charles", "Karen", "Christopher", "Nancy",
	"Daniel", "Margaret", "Matthew", "Lisa", "Anthony", "Betty", "Mark",
	"Dorothy", "Paul", "Sandra", "Steven", "Ashley", "Andrew", "Kimberly",
	"Kenneth", "Emily", "Joshua", "Donna", "George", "Michelle", "Edward",
	"Carol", "Brian", "Amanda", "Ronald", "Melissa", "Timothy", "Deborah",
	"Jason", "Stephanie", "Jeffrey", "Rebecca", "Ryan", "Laura", "Jacob",
	"Helen", "Gary", "Sharon", "Nicholas", "Cynthia", "Eric", "Kathleen",
	"Jonathan", "Amy", "Larry", "Shirley", "Justin", "Angela", "Scott", "Anna",
	"Frank", "Ruth", "Benjamin", "Brenda", "Gregory", "Pamela", "Samuel",
	"Nicole", "Pierre", "Marie", "Jean", "Camille", "Hans", "Greta", "Klaus",
	"Ingrid", "Carlos", "Lucia", "Miguel", "Isabel", "Giovanni", "Chiara",
	"Marco", "Francesca", "Haruki", "Yuki", "Kenji", "Akiko", "Ivan", "Olga",
	"Leo", "Clara", "Hugo", "Alice", "Oscar", "Iris", "Felix", "Vera",
}

var seedLastNames = []string{
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller",
	"Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez",
	"Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
	"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
	"Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
	"Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams",
	"Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter",
	"Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker",
	"Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales",
	"Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper",
	"Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox",
	"Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James",
	"Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez",
	"Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster",
	"Dubois", "Lefebvre", "Moreau", "Laurent", "Schmidt", "Schneider",
	"Fischer", "Weber", "Rossi", "Russo", "Ferrari", "Bianchi", "Tanaka",
	"Suzuki", "Watanabe", "Yamamoto", "Ivanov", "Petrov", "Novak", "Larsen",
	"Lindqvist", "O'Brien", "MacLeod", "Fitzgerald", "Sullivan", "Hayes",
}

var seedTitleAdjectives = []string{
	"Silent", "Hidden", "Forgotten", "Last", "Broken", "Golden", "Crimson",
	"Distant", "Secret", "Burning", "Frozen", "Lost", "Wandering", "Quiet",
	"Endless", "Shattered", "Midnight", "Ancient", "Hollow", "Bright", "Dark",
	"Silver", "Restless", "Gentle", "Wild", "Bitter", "Winter", "Summer",
	"Iron", "Painted", "Sleeping", "Falling", "Invisible", "Little", "Long",
	"Northern", "Southern", "Eastern", "Western", "Scarlet", "Pale", "Salt",
}

var seedTitleNouns = []string{
	"River", "Garden", "House", "Sea", "Mountain", "City", "Road", "Forest",
	"Kingdom", "Island", "Letter", "Storm", "Tower", "Bridge", "Shadow",
	"Crown", "Harbour", "Mirror", "Promise", "Orchard", "Lighthouse", "Valley",
	"Station", "Empire", "Journey", "Winter", "Door", "Map", "Song", "Star",
	"Moon", "Fire", "Library", "Clock", "Compass", "Voyage", "Inheritance",
	"Witness", "Stranger", "Daughter", "Son", "Widow", "Captain", "Keeper",
	"Thief", "Queen", "King", "Hunter", "Painter", "Gardener", "Orphan",
}

var seedTitlePlaces = []string{
	"Avalon", "the North", "Vienna", "the Marsh", "Kyoto", "Lisbon",
	"the Moors", "Salt Creek", "Prague", "the Desert", "Elmwood", "Cairo",
	"the Old Quarter", "Ravenhill", "Galway", "the Steppe", "Marrakesh",
}

var seedSummaryOpenings = []string{
	"A sweeping tale of", "A quiet meditation on", "A gripping story of",
	"An unflinching portrait of", "A tender account of", "A darkly comic novel about",
	"A haunting exploration of", "A fast-paced adventure about", "A lyrical story of",
	"An intimate chronicle of",
}

var seedSummarySubjects = []string{
	"love and loss", "family secrets", "a disappearance", "ambition and its price",
	"memory and forgiveness", "an unlikely friendship", "war and survival",
	"a forgotten inheritance", "exile and return", "betrayal", "a small town",
	"a long journey home", "a crime that was never solved", "first love",
	"the end of an empire", "a scientist's obsession",
}

var seedSummaryClosings = []string{
	"Nothing will ever be the same.", "Some doors, once opened, cannot be closed.",
	"The past is never quite finished.", "Every choice has a cost.",
	"The truth is stranger than anyone expected.", "Only time will tell who was right.",
	"What begins as a favour becomes an obsession.", "Home is not where they left it.",
}

var seedPublishers = []string{
	"Penguin", "Vintage", "Faber & Faber", "HarperCollins", "Picador",
	"Bloomsbury", "Gallimard", "Suhrkamp", "Anagrama", "Einaudi", "Shinchosha",
	"Random House", "Macmillan", "Oxford University Press", "Hachette",
	"Simon & Schuster", "Folio", "Everyman's Library",
}
